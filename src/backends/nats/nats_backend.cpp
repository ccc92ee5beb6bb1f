#include "nats_backend.hpp"

#include "../../completion.hpp"
#include "../client_backend.hpp"
#include "nats_api.hpp"
#include "nats_client.hpp"

#include <broadcaster/error.hpp>

namespace broadcaster::detail {
namespace {

class nats_backend final : public client_backend<nats_client> {
  public:
    explicit nats_backend(nats_config config) : config_(std::move(config)) {}

    void async_publish(std::string channel, std::string message,
                       completion_handler handler) override {
        if (auto* client = checked_client(channel, handler)) {
            client->publish(std::move(channel), std::move(message), std::move(handler));
        }
    }

    void async_history(std::string channel, history_query query, history_handler handler) override {
        if (config_.stream.empty()) {
            backend::async_history(std::move(channel), std::move(query), std::move(handler));
            return;
        }
        boost::system::error_code ec;
        auto* c = client();
        if (!c) {
            ec = error::not_connected;
        } else if (!valid_nats_subject(channel)) {
            ec = error::invalid_channel;
        } else {
            c->history(std::move(channel), std::move(query), std::move(handler));
            return;
        }
        post_completion(std::move(handler), executor(), ec, std::vector<event>());
    }

    void async_subscribe_pattern(std::string pattern, completion_handler handler) override {
        auto* client = connected_client(handler);
        if (client && !valid_nats_pattern(pattern)) {
            complete(handler, error::invalid_channel);
            return;
        }
        if (client) {
            client->subscribe(std::move(pattern), std::move(handler));
        }
    }

    void async_unsubscribe_pattern(std::string pattern, completion_handler handler) override {
        if (auto* c = client(); c && valid_nats_pattern(pattern)) {
            c->unsubscribe(pattern, std::move(handler));
        } else {
            complete(handler, {});
        }
    }

  private:
    std::unique_ptr<nats_client> make_client() override {
        return std::make_unique<nats_client>(executor(), config_, weak_sink());
    }

    bool carries(const std::string& channel) const override { return valid_nats_subject(channel); }

    const nats_config config_;
};

}  // namespace

std::unique_ptr<backend> make_nats_backend(const backend_config& config) {
    natsc();  // loads libnats (or throws error::backend_unavailable) before any use
    return std::make_unique<nats_backend>(parse_nats_url(config));
}

}  // namespace broadcaster::detail
