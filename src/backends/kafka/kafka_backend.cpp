#include "kafka_backend.hpp"

#include "../../completion.hpp"
#include "kafka_client.hpp"

#include <broadcaster/error.hpp>

#include <boost/asio/post.hpp>

namespace broadcaster::detail {
namespace {

namespace asio = boost::asio;
using boost::system::error_code;

class kafka_backend final : public backend {
  public:
    explicit kafka_backend(kafka_config config) : config_(std::move(config)) {}

    ~kafka_backend() override {
        if (client_) {
            asio::post(executor(), [client = client_] { client->stop(); });
        }
    }

    void async_connect(completion_handler handler) override {
        if (client_) {
            client_->stop();
        }
        client_ = std::make_shared<kafka_client>(executor(), config_, weak_sink());
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
        auto topic = checked_topic(channel, handler);
        if (!topic.empty()) {
            client_->subscribe(std::move(topic), std::move(handler));
        }
    }

    void async_unsubscribe(std::string channel, completion_handler handler) override {
        auto topic = kafka_topic(config_.topic_prefix, channel);
        if (!client_ || topic.empty()) {
            post_completion(std::move(handler), executor(), error_code());
            return;
        }
        client_->unsubscribe(topic, std::move(handler));
    }

    void async_publish(std::string channel, std::string message,
                       completion_handler handler) override {
        auto topic = checked_topic(channel, handler);
        if (!topic.empty()) {
            client_->publish(std::move(topic), std::move(message), std::move(handler));
        }
    }

  private:
    // The channel's topic; or empty, the handler completed with the reason, when
    // there is no connection or Kafka cannot name a topic so.
    std::string checked_topic(const std::string& channel, completion_handler& handler) {
        auto topic = kafka_topic(config_.topic_prefix, channel);
        error_code ec;
        if (!client_) {
            ec = error::not_connected;
        } else if (topic.empty()) {
            ec = error::invalid_channel;
        }
        if (ec) {
            post_completion(std::move(handler), executor(), ec);
            return {};
        }
        return topic;
    }

    const kafka_config config_;
    std::shared_ptr<kafka_client> client_;
};

}  // namespace

std::unique_ptr<backend> make_kafka_backend(const backend_config& config) {
    return std::make_unique<kafka_backend>(parse_kafka_url(config));
}

}  // namespace broadcaster::detail
