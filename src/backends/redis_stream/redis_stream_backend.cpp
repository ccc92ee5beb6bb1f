#include "redis_stream_backend.hpp"

#include "../client_backend.hpp"
#include "../redis/redis_backend.hpp"
#include "redis_stream_client.hpp"

#include <broadcaster/error.hpp>

namespace broadcaster::detail {
namespace {

namespace asio = boost::asio;

class redis_stream_backend final : public client_backend<redis_stream_client> {
  public:
    explicit redis_stream_backend(redis_stream_config config)
        : config_(std::move(config)), tls_(make_tls_context(config_.redis, "rediss-stream")) {}

    void async_publish(std::string channel, std::string message,
                       completion_handler handler) override {
        auto* client = connected_client(handler);
        if (!client) {
            return;
        }
        if (message.size() > config_.redis.max_payload_bytes ||
            channel.size() > redis_config::max_bulk_bytes) {
            complete(handler, error::payload_too_large);
            return;
        }
        client->publish(std::move(channel), std::move(message), std::move(handler));
    }

    void async_history(std::string channel, history_query query, history_handler handler) override {
        if (auto* c = client()) {
            c->history(std::move(channel), std::move(query), std::move(handler));
        } else {
            post_completion(std::move(handler), executor(),
                            boost::system::error_code(error::not_connected), std::vector<event>());
        }
    }

  private:
    std::unique_ptr<redis_stream_client> make_client() override {
        return std::make_unique<redis_stream_client>(executor(), config_, tls_, weak_sink());
    }

    const redis_stream_config config_;
    const std::shared_ptr<asio::ssl::context> tls_;
};

}  // namespace

std::unique_ptr<backend> make_redis_stream_backend(const backend_config& config) {
    return std::make_unique<redis_stream_backend>(parse_redis_stream_url(config));
}

}  // namespace broadcaster::detail
