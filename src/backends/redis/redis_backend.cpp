#include "redis_backend.hpp"

#include "../client_backend.hpp"
#include "redis_client.hpp"

#include <broadcaster/error.hpp>

namespace broadcaster::detail {

namespace asio = boost::asio;

std::shared_ptr<asio::ssl::context> make_tls_context(const redis_config& config,
                                                     const char* scheme) {
    if (!config.tls) {
        return nullptr;
    }
    openssl(scheme);  // loads OpenSSL (or throws error::backend_unavailable) before any use
    auto context = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_client);
    try {
        if (config.tls_verify) {
            context->set_verify_mode(asio::ssl::verify_peer);
            if (config.tls_ca_file.empty()) {
                context->set_default_verify_paths();
            } else {
                context->load_verify_file(config.tls_ca_file);
            }
        } else {
            context->set_verify_mode(asio::ssl::verify_none);
        }
    } catch (const boost::system::system_error& e) {
        throw boost::system::system_error(
            error::invalid_url, "'" + config.redacted_url + "': cannot load the TLS CA file '" +
                                    config.tls_ca_file + "': " + e.code().message());
    }
    return context;
}

namespace {

class redis_backend final : public client_backend<redis_client> {
  public:
    explicit redis_backend(redis_config config)
        : config_(std::move(config)), tls_(make_tls_context(config_, "rediss")) {}

    void async_publish(std::string channel, std::string message,
                       completion_handler handler) override {
        auto* client = connected_client(handler);
        if (!client) {
            return;
        }
        // Refused before anything is sent: Redis would accept it, then drop it with the
        // subscriber's connection (see redis_config::max_payload_bytes).
        if (message.size() > config_.max_payload_bytes ||
            channel.size() > redis_config::max_bulk_bytes) {
            complete(handler, error::payload_too_large);
            return;
        }
        client->publish(std::move(channel), std::move(message), std::move(handler));
    }

  private:
    std::unique_ptr<redis_client> make_client() override {
        return std::make_unique<redis_client>(executor(), config_, tls_, weak_sink());
    }

    const redis_config config_;
    const std::shared_ptr<asio::ssl::context> tls_;
};

}  // namespace

std::unique_ptr<backend> make_redis_backend(const backend_config& config) {
    return std::make_unique<redis_backend>(parse_redis_url(config));
}

}  // namespace broadcaster::detail
