#include "pending_receives.hpp"

#include "subscriber_state.hpp"

namespace broadcaster::detail {

bool receive_registry::add(subscriber_state* state, std::weak_ptr<subscriber_state> weak) {
    std::lock_guard lock(mutex_);
    if (shut_down()) {
        return false;
    }
    states_.emplace(state, std::move(weak));
    return true;
}

void receive_registry::remove(subscriber_state* state) {
    std::lock_guard lock(mutex_);
    states_.erase(state);
}

std::vector<std::shared_ptr<subscriber_state>> receive_registry::close() {
    std::lock_guard lock(mutex_);
    shut_down_.store(true, std::memory_order_release);
    std::vector<std::shared_ptr<subscriber_state>> alive;
    for (auto& [state, weak] : std::exchange(states_, {})) {
        if (auto strong = weak.lock()) {
            alive.push_back(std::move(strong));
        }
    }
    return alive;
}

boost::asio::execution_context::id pending_receives::id;

pending_receives::pending_receives(boost::asio::execution_context& context)
    : boost::asio::execution_context::service(context) {}

void pending_receives::shutdown() {
    // Without the registry's lock: destroying a handler may destroy other states.
    for (const auto& state : registry_->close()) {
        state->drop_pending();
    }
}

}  // namespace broadcaster::detail
