#include "redis_backend.hpp"

#include "../../completion.hpp"
#include "redis_client.hpp"

#include <broadcaster/error.hpp>

#include <boost/asio/post.hpp>

namespace broadcaster::detail {
namespace {

namespace asio = boost::asio;
using boost::system::error_code;

// Redis refuses bulk strings over 512 MiB (proto-max-bulk-len).
constexpr std::size_t max_payload = 512u * 1024 * 1024;

std::shared_ptr<asio::ssl::context> make_tls_context(const redis_config& config) {
    if (!config.tls) {
        return nullptr;
    }
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

// The backend object the broadcast owns. The client behind it is shared with its
// pending operations, so destroying the backend only asks it to stop.
class redis_backend final : public backend {
  public:
    explicit redis_backend(redis_config config)
        : config_(std::move(config)), tls_(make_tls_context(config_)) {}

    ~redis_backend() override {
        if (client_) {
            asio::post(executor(), [client = client_] { client->stop(); });
        }
    }

    void async_connect(completion_handler handler) override {
        if (client_) {
            client_->stop();
        }
        client_ = std::make_shared<redis_client>(executor(), config_, tls_, weak_sink());
        client_->connect(std::move(handler));
    }

    void async_disconnect(completion_handler handler) override {
        if (!client_) {
            post_completion(std::move(handler), executor(), error_code());
            return;
        }
        std::exchange(client_, nullptr)->disconnect(std::move(handler));
    }

    void async_subscribe(std::string channel, completion_handler handler) override {
        if (!client_) {
            post_completion(std::move(handler), executor(), error_code(error::not_connected));
            return;
        }
        client_->subscribe(std::move(channel), std::move(handler));
    }

    void async_unsubscribe(std::string channel, completion_handler handler) override {
        if (!client_) {
            post_completion(std::move(handler), executor(), error_code());
            return;
        }
        client_->unsubscribe(std::move(channel), std::move(handler));
    }

    void async_publish(std::string channel, std::string message,
                       completion_handler handler) override {
        if (!client_) {
            post_completion(std::move(handler), executor(), error_code(error::not_connected));
            return;
        }
        if (message.size() > max_payload || channel.size() > max_payload) {
            post_completion(std::move(handler), executor(), error_code(error::payload_too_large));
            return;
        }
        client_->publish(std::move(channel), std::move(message), std::move(handler));
    }

  private:
    const redis_config config_;
    const std::shared_ptr<asio::ssl::context> tls_;
    std::shared_ptr<redis_client> client_;
};

}  // namespace

std::unique_ptr<backend> make_redis_backend(const backend_config& config) {
    return std::make_unique<redis_backend>(parse_redis_url(config));
}

}  // namespace broadcaster::detail
