#pragma once

// A waiting receive's handler lives in its subscriber_state, out of reach of the
// io_context's own queues. A handler that owns its subscriber (a session, a coroutine
// that owns its broadcast) then forms a cycle that nothing breaks when the io_context is
// destroyed. This service, one per execution context, knows the subscriber states of its
// context and destroys their waiting handlers, uncalled, at shutdown, as Asio does with
// its own pending operations.

#include <boost/asio/execution_context.hpp>

#include <atomic>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

namespace broadcaster::detail {

class subscriber_state;

// The states of one context; shared with them, so a state outliving its context can
// still take itself off the list.
class receive_registry {
  public:
    // False once the context is shutting down: the caller must not keep a handler.
    bool add(subscriber_state* state, std::weak_ptr<subscriber_state> weak);
    void remove(subscriber_state* state);
    bool shut_down() const noexcept { return shut_down_.load(std::memory_order_acquire); }
    // Marks the registry shut down and returns the states still alive.
    std::vector<std::shared_ptr<subscriber_state>> close();

  private:
    std::mutex mutex_;
    std::atomic<bool> shut_down_{false};
    std::unordered_map<subscriber_state*, std::weak_ptr<subscriber_state>> states_;
};

class pending_receives final : public boost::asio::execution_context::service {
  public:
    using key_type = pending_receives;
    static boost::asio::execution_context::id id;

    explicit pending_receives(boost::asio::execution_context& context);

    const std::shared_ptr<receive_registry>& registry() const noexcept { return registry_; }

  private:
    void shutdown() override;

    const std::shared_ptr<receive_registry> registry_ = std::make_shared<receive_registry>();
};

}  // namespace broadcaster::detail
