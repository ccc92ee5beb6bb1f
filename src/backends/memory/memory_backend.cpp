#include "memory_backend.hpp"

#include "../../completion.hpp"
#include "memory_hub.hpp"

#include <broadcaster/error.hpp>

#include <boost/url/parse.hpp>

namespace broadcaster::detail {
namespace {

using boost::system::error_code;

class memory_backend final : public backend {
  public:
    explicit memory_backend(std::shared_ptr<memory_hub> hub) : hub_(std::move(hub)) {}

    ~memory_backend() override {
        if (endpoint_) {
            hub_->unsubscribe_all(endpoint_.get());
        }
    }

    void async_connect(completion_handler handler) override {
        if (!endpoint_) {
            endpoint_ = std::make_shared<memory_hub::endpoint>(
                memory_hub::endpoint{executor(), weak_sink()});
        }
        post_completion(std::move(handler), executor(), error_code());
    }

    void async_disconnect(completion_handler handler) override {
        if (endpoint_) {
            hub_->unsubscribe_all(endpoint_.get());
            endpoint_.reset();
        }
        post_completion(std::move(handler), executor(), error_code());
    }

    void async_subscribe(std::string channel, completion_handler handler) override {
        if (!endpoint_) {
            post_completion(std::move(handler), executor(), error_code(error::not_connected));
            return;
        }
        hub_->subscribe(channel, endpoint_);
        post_completion(std::move(handler), executor(), error_code());
    }

    void async_unsubscribe(std::string channel, completion_handler handler) override {
        if (endpoint_) {
            hub_->unsubscribe(channel, endpoint_.get());
        }
        post_completion(std::move(handler), executor(), error_code());
    }

    void async_publish(std::string channel, std::string message,
                       completion_handler handler) override {
        if (!endpoint_) {
            post_completion(std::move(handler), executor(), error_code(error::not_connected));
            return;
        }
        event ev(std::move(channel), std::move(message));
        if (hub_->publish(ev, endpoint_.get())) {
            sink().deliver(std::move(ev));
        }
        post_completion(std::move(handler), executor(), error_code());
    }

  private:
    const std::shared_ptr<memory_hub> hub_;
    std::shared_ptr<memory_hub::endpoint> endpoint_;  // set while connected
};

}  // namespace

std::unique_ptr<backend> make_memory_backend(const backend_config& config) {
    const auto url = boost::urls::parse_uri(config.url);
    if (!url || (!url->path().empty() && url->path() != "/") || url->has_query() ||
        url->has_userinfo() || url->has_port()) {
        throw boost::system::system_error(
            error::invalid_url,
            "'" + config.redacted_url + "': expected memory:// or memory://NAME");
    }
    const std::string name = url->host();
    return std::make_unique<memory_backend>(name.empty() ? std::make_shared<memory_hub>()
                                                         : memory_hub::named(name));
}

}  // namespace broadcaster::detail
