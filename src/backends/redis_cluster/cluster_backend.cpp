#include "cluster_backend.hpp"

#include "../client_backend.hpp"
#include "../redis/redis_backend.hpp"
#include "cluster_client.hpp"

#include <broadcaster/error.hpp>

namespace broadcaster::detail {
namespace {

class cluster_backend final : public client_backend<cluster_client> {
  public:
    explicit cluster_backend(cluster_config config)
        : config_(std::move(config)), tls_(make_tls_context(config_.node, "rediss-cluster")) {}

    void async_publish(std::string channel, std::string message,
                       completion_handler handler) override {
        auto* client = connected_client(handler);
        if (!client) {
            return;
        }
        // As redis://: refused before anything is sent (see redis_config::max_payload_bytes).
        if (message.size() > config_.node.max_payload_bytes ||
            channel.size() > redis_config::max_bulk_bytes) {
            complete(handler, error::payload_too_large);
            return;
        }
        client->publish(std::move(channel), std::move(message), std::move(handler));
    }

  private:
    std::unique_ptr<cluster_client> make_client() override {
        return std::make_unique<cluster_client>(executor(), config_, tls_, weak_sink());
    }

    const cluster_config config_;
    const std::shared_ptr<boost::asio::ssl::context> tls_;
};

}  // namespace

std::unique_ptr<backend> make_redis_cluster_backend(const backend_config& config) {
    return std::make_unique<cluster_backend>(parse_cluster_url(config));
}

}  // namespace broadcaster::detail
