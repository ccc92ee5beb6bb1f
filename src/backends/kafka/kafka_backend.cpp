#include "kafka_backend.hpp"

#include "../client_backend.hpp"
#include "kafka_client.hpp"
#include "rdkafka_api.hpp"

#include <broadcaster/error.hpp>

namespace broadcaster::detail {
namespace {

class kafka_backend final : public client_backend<kafka_client> {
  public:
    explicit kafka_backend(kafka_config config) : config_(std::move(config)) {}

    void async_subscribe(std::string channel, completion_handler handler) override {
        auto topic = kafka_topic(config_.topic_prefix, channel);
        if (auto* client = checked_client(topic, handler)) {
            client->subscribe(std::move(topic), std::move(handler));
        }
    }

    void async_unsubscribe(std::string channel, completion_handler handler) override {
        const auto topic = kafka_topic(config_.topic_prefix, channel);
        if (auto* c = client(); c && !topic.empty()) {
            c->unsubscribe(topic, std::move(handler));
        } else {
            complete(handler, {});
        }
    }

    void async_publish(std::string channel, std::string message,
                       completion_handler handler) override {
        auto topic = kafka_topic(config_.topic_prefix, channel);
        if (auto* client = checked_client(topic, handler)) {
            client->publish(std::move(topic), std::move(message), std::move(handler));
        }
    }

    // Positions are `partition-offset` (kafka_history.hpp): the default order fits them.
    void async_history(std::string channel, history_query query, history_handler handler) override {
        auto topic = kafka_topic(config_.topic_prefix, channel);
        boost::system::error_code ec;
        if (!client()) {
            ec = error::not_connected;
        } else if (topic.empty()) {
            ec = error::invalid_channel;
        } else {
            client()->history(std::move(topic), std::move(channel), std::move(query),
                              std::move(handler));
            return;
        }
        post_completion(std::move(handler), executor(), ec, std::vector<event>());
    }

  private:
    std::unique_ptr<kafka_client> make_client() override {
        return std::make_unique<kafka_client>(executor(), config_, weak_sink());
    }

    // Kafka cannot name a topic so.
    bool carries(const std::string& topic) const override { return !topic.empty(); }

    const kafka_config config_;
};

}  // namespace

std::unique_ptr<backend> make_kafka_backend(const backend_config& config) {
    rdkafka();  // loads librdkafka (or throws error::backend_unavailable) before any use
    return std::make_unique<kafka_backend>(parse_kafka_url(config));
}

}  // namespace broadcaster::detail
