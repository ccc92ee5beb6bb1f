#pragma once

// A custom backend for tests of the core: it forwards to an in-process memory backend
// and counts the calls the broadcast makes, so tests can check what reaches the broker.

#include "backend_access.hpp"
#include "backends/memory/memory_backend.hpp"

#include <broadcaster/backend.hpp>

#include <boost/asio/error.hpp>
#include <boost/asio/post.hpp>

#include <atomic>
#include <map>
#include <mutex>

namespace broadcaster::test {

struct backend_calls {
    std::mutex mutex;
    int connects = 0;
    int disconnects = 0;
    std::map<std::string, int> subscribes;
    std::map<std::string, int> unsubscribes;
    int publishes = 0;

    int subscribes_of(const std::string& channel) {
        std::lock_guard lock(mutex);
        return subscribes[channel];
    }
    int unsubscribes_of(const std::string& channel) {
        std::lock_guard lock(mutex);
        return unsubscribes[channel];
    }
};

class counting_backend final : public backend {
  public:
    explicit counting_backend(std::shared_ptr<backend_calls> calls)
        : calls_(std::move(calls)),
          inner_(detail::make_memory_backend(backend_config{"memory://", "memory://", {}})) {}

    void async_connect(completion_handler handler) override {
        detail::backend_access::attach(*inner_, executor(), weak_sink());
        count([&] { ++calls_->connects; });
        inner_->async_connect(std::move(handler));
    }
    void async_disconnect(completion_handler handler) override {
        count([&] { ++calls_->disconnects; });
        inner_->async_disconnect(std::move(handler));
    }
    void async_subscribe(std::string channel, completion_handler handler) override {
        count([&] { ++calls_->subscribes[channel]; });
        inner_->async_subscribe(std::move(channel), std::move(handler));
    }
    void async_unsubscribe(std::string channel, completion_handler handler) override {
        count([&] { ++calls_->unsubscribes[channel]; });
        inner_->async_unsubscribe(std::move(channel), std::move(handler));
    }
    void async_publish(std::string channel, std::string message,
                       completion_handler handler) override {
        count([&] { ++calls_->publishes; });
        inner_->async_publish(std::move(channel), std::move(message), std::move(handler));
    }

    // Plays a lost and restored connection, as a network backend reports it.
    void simulate_reconnect() {
        boost::asio::post(executor(), [this] {
            sink().state_changed(connection_state::reconnecting,
                                 boost::asio::error::connection_reset);
            sink().state_changed(connection_state::connected, {});
        });
    }

  private:
    template <typename F>
    void count(F f) {
        std::lock_guard lock(calls_->mutex);
        f();
    }

    std::shared_ptr<backend_calls> calls_;
    std::unique_ptr<backend> inner_;
};

}  // namespace broadcaster::test
