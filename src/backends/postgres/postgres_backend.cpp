#include "postgres_backend.hpp"

#include "../../completion.hpp"
#include "../../utf8.hpp"
#include "postgres_client.hpp"

#include <broadcaster/error.hpp>

#include <boost/asio/post.hpp>

namespace broadcaster::detail {
namespace {

namespace asio = boost::asio;
using boost::system::error_code;

// What Postgres cannot use as a channel even when quoted.
bool valid_channel(const std::string& channel) {
    return !channel.empty() && channel.find('\0') == std::string::npos && is_valid_utf8(channel);
}

class postgres_backend final : public backend {
  public:
    explicit postgres_backend(postgres_config config) : config_(std::move(config)) {}

    ~postgres_backend() override {
        if (client_) {
            asio::post(executor(), [client = client_] { client->stop(); });
        }
    }

    void async_connect(completion_handler handler) override {
        if (client_) {
            client_->stop();
        }
        client_ = std::make_shared<postgres_client>(executor(), config_, weak_sink());
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
        if (!check(channel, handler)) {
            return;
        }
        client_->subscribe(std::move(channel), std::move(handler));
    }

    void async_unsubscribe(std::string channel, completion_handler handler) override {
        if (!client_ || !valid_channel(channel)) {
            post_completion(std::move(handler), executor(), error_code());
            return;
        }
        client_->unsubscribe(std::move(channel), std::move(handler));
    }

    void async_publish(std::string channel, std::string message,
                       completion_handler handler) override {
        if (!check(channel, handler)) {
            return;
        }
        client_->publish(std::move(channel), std::move(message), std::move(handler));
    }

  private:
    // Refuses, before anything is sent, what cannot work.
    bool check(const std::string& channel, completion_handler& handler) {
        error_code ec;
        if (!client_) {
            ec = error::not_connected;
        } else if (!valid_channel(channel)) {
            ec = error::invalid_channel;
        }
        if (ec) {
            post_completion(std::move(handler), executor(), ec);
            return false;
        }
        return true;
    }

    const postgres_config config_;
    std::shared_ptr<postgres_client> client_;
};

}  // namespace

std::unique_ptr<backend> make_postgres_backend(const backend_config& config) {
    return std::make_unique<postgres_backend>(parse_postgres_url(config));
}

}  // namespace broadcaster::detail
