#include "memory_backend.hpp"

#include "../../completion.hpp"
#include "../url_options.hpp"
#include "memory_hub.hpp"

#include <broadcaster/error.hpp>

#include <boost/url/parse.hpp>

namespace broadcaster::detail {
namespace {

using boost::system::error_code;

constexpr long long max_memory_history = 1'000'000;

class memory_backend final : public backend {
  public:
    memory_backend(std::shared_ptr<memory_hub> hub, std::size_t history)
        : hub_(std::move(hub)), history_(history) {
        hub_->keep_history(history_);
    }

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

    void async_history(std::string channel, history_query query, history_handler handler) override {
        if (history_ == 0) {
            backend::async_history(std::move(channel), std::move(query), std::move(handler));
            return;
        }
        std::vector<event> events;
        const auto ec = hub_->history(channel, query.after, query.limit, events);
        post_completion(std::move(handler), executor(), ec, std::move(events));
    }

  private:
    const std::shared_ptr<memory_hub> hub_;
    const std::size_t history_;                       // events kept per channel; 0: no history
    std::shared_ptr<memory_hub::endpoint> endpoint_;  // set while connected
};

}  // namespace

std::unique_ptr<backend> make_memory_backend(const backend_config& config) {
    const auto url = boost::urls::parse_uri(config.url);
    if (!url || (!url->path().empty() && url->path() != "/") || url->has_userinfo() ||
        url->has_port()) {
        invalid_url(config, "expected memory:// or memory://NAME");
    }
    std::size_t history = 0;
    for (const auto& param : url->params()) {
        if (param.key != "history") {
            invalid_url(config, "unknown option '" + std::string(param.key) + "'");
        }
        // A bound, so a typo cannot reserve the whole memory per channel.
        const auto n = option_number(config, "history", param.value);
        if (n > max_memory_history) {
            invalid_url(config, "history must be at most " + std::to_string(max_memory_history));
        }
        history = static_cast<std::size_t>(n);
    }
    const std::string name = url->host();
    return std::make_unique<memory_backend>(
        name.empty() ? std::make_shared<memory_hub>() : memory_hub::named(name), history);
}

}  // namespace broadcaster::detail
