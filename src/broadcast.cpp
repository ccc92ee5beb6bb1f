#include "backend_registry.hpp"
#include "broadcast_core.hpp"

#include <broadcaster/broadcast.hpp>
#include <broadcaster/url.hpp>

namespace broadcaster {

namespace detail {

void async_connect(const std::shared_ptr<broadcast_core>& core, error_handler handler) {
    core->connect(std::move(handler));
}

void async_disconnect(const std::shared_ptr<broadcast_core>& core, error_handler handler) {
    core->disconnect(std::move(handler));
}

void async_shutdown(const std::shared_ptr<broadcast_core>& core, error_handler handler) {
    core->async_shutdown(std::move(handler));
}

void async_publish(const std::shared_ptr<broadcast_core>& core, std::string channel,
                   std::string message, error_handler handler) {
    core->publish(std::move(channel), std::move(message), std::move(handler));
}

void async_subscribe(const std::shared_ptr<broadcast_core>& core, std::vector<std::string> channels,
                     subscribe_options options, subscribe_handler handler) {
    core->subscribe(std::move(channels), options, std::move(handler));
}

void async_history(const std::shared_ptr<broadcast_core>& core, std::string channel,
                   std::size_t limit, history_handler handler) {
    core->history(std::move(channel), limit, std::move(handler));
}

void async_subscribe_callback(const std::shared_ptr<broadcast_core>& core,
                              std::vector<std::string> channels, event_callback on_event,
                              subscribe_options options, subscription_handler handler) {
    core->subscribe_callback(std::move(channels), std::move(on_event), options, std::move(handler));
}

namespace {
std::shared_ptr<broadcast_core> make_core(boost::asio::any_io_executor executor,
                                          std::unique_ptr<backend> backend, std::string url) {
    auto core =
        std::make_shared<broadcast_core>(std::move(executor), std::move(backend), std::move(url));
    core->attach();
    return core;
}
}  // namespace

}  // namespace detail

broadcast::broadcast(executor_type executor, std::string_view url, broadcast_options options)
    : core_(detail::make_core(std::move(executor), detail::make_backend(url, options),
                              redact_url(url))) {}

broadcast::broadcast(executor_type executor, std::unique_ptr<backend> backend)
    : core_(detail::make_core(std::move(executor), std::move(backend), "custom")) {}

broadcast::broadcast(broadcast&&) noexcept = default;

broadcast& broadcast::operator=(broadcast&& other) noexcept {
    if (this != &other) {
        if (core_) {
            core_->shutdown();
        }
        core_ = std::move(other.core_);
    }
    return *this;
}

broadcast::~broadcast() {
    if (core_) {
        core_->shutdown();
    }
}

broadcast::executor_type broadcast::get_executor() const noexcept {
    return core_->executor();
}

const std::string& broadcast::url() const noexcept {
    return core_->url();
}

void broadcast::on_state_change(state_observer observer) {
    core_->set_observer(std::move(observer));
}

connection_state broadcast::state() const noexcept {
    return core_->state();
}

broadcast_stats broadcast::stats() const noexcept {
    return core_->stats();
}

}  // namespace broadcaster
