#include "postgres_backend.hpp"

#include "../../completion.hpp"
#include "../../utf8.hpp"
#include "../client_backend.hpp"
#include "../tls/openssl_api.hpp"
#include "libpq_api.hpp"
#include "postgres_client.hpp"

#include <broadcaster/error.hpp>

namespace broadcaster::detail {
namespace {

// What Postgres cannot use as a channel even when quoted.
bool valid_channel(const std::string& channel) {
    return !channel.empty() && channel.find('\0') == std::string::npos && is_valid_utf8(channel);
}

class postgres_backend final : public client_backend<postgres_client> {
  public:
    explicit postgres_backend(postgres_config config) : config_(std::move(config)) {}

    void async_publish(std::string channel, std::string message,
                       completion_handler handler) override {
        auto* client = checked_client(channel, handler);
        if (!client) {
            return;
        }
        if (message.size() > config_.max_payload_bytes) {
            complete(handler, error::payload_too_large);
            return;
        }
        client->publish(std::move(channel), std::move(message), std::move(handler));
    }

    void async_history(std::string channel, history_query query, history_handler handler) override {
        if (config_.history == 0) {
            backend::async_history(std::move(channel), std::move(query), std::move(handler));
            return;
        }
        error_code ec;
        auto* c = client();
        if (!c) {
            ec = error::not_connected;
        } else if (!valid_channel(channel)) {
            ec = error::invalid_channel;
        } else {
            c->history(std::move(channel), std::move(query), std::move(handler));
            return;
        }
        post_completion(std::move(handler), executor(), ec, std::vector<event>());
    }

  private:
    using error_code = boost::system::error_code;

    std::unique_ptr<postgres_client> make_client() override {
        return std::make_unique<postgres_client>(executor(), config_, weak_sink());
    }

    bool carries(const std::string& channel) const override { return valid_channel(channel); }

    const postgres_config config_;
};

}  // namespace

std::unique_ptr<backend> make_postgres_backend(const backend_config& config) {
    libpq();              // loads libpq (or throws error::backend_unavailable) before any use
    openssl("postgres");  // SHA-256 for long channel names
    return std::make_unique<postgres_backend>(parse_postgres_url(config));
}

}  // namespace broadcaster::detail
