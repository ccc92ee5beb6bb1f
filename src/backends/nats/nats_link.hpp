#pragma once

// The way from nats.c's threads to a client's strand. nats.c calls back from threads of
// its own (message delivery, reconnect, timers, connection events), sometimes after the
// connection was destroyed: every callback's closure is a link id, never a pointer, and
// a callback only posts to the strand while the link is open. A link closes when its
// client stops, or when its io_context shuts down, so nothing is posted to a dead one.

#include "nats_delivery.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/post.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <utility>
#include <vector>

namespace broadcaster::detail {

class nats_client;

class nats_link : public std::enable_shared_from_this<nats_link> {
  public:
    // A new link, registered (with its io_context's service too); open.
    static std::shared_ptr<nats_link> make(boost::asio::any_io_executor strand,
                                           std::weak_ptr<nats_client> client,
                                           std::chrono::milliseconds backoff_min,
                                           std::chrono::milliseconds backoff_max);
    // The open link of `id`, or null; callable from any thread.
    static std::shared_ptr<nats_link> find(std::uint64_t id);

    ~nats_link();

    std::uint64_t id() const noexcept { return id_; }
    // For nats.c: the closure its callbacks receive.
    void* closure() const noexcept {
        return reinterpret_cast<void*>(static_cast<std::uintptr_t>(id_));
    }
    static std::uint64_t id_of(void* closure) noexcept {
        return static_cast<std::uint64_t>(reinterpret_cast<std::uintptr_t>(closure));
    }

    // Runs `work(client)` on the strand if the link is still open then and the client
    // alive; from any thread. False if the link is closed (`work` is dropped).
    template <typename Work>
    bool post(Work work) {
        std::lock_guard lock(mutex_);
        if (!strand_) {
            return false;
        }
        boost::asio::post(strand_, [client = client_, work = std::move(work)]() mutable {
            if (auto c = client.lock()) {
                work(*c);
            }
        });
        return true;
    }

    // From nats.c's delivery thread: queues `d` for the client, and wakes the strand
    // (`wake(client)`, posted) if nothing was queued. One wake-up per batch, not one
    // post per message. Dropped if the link is closed.
    template <typename Wake>
    void deliver(nats_delivery d, Wake wake) {
        std::lock_guard lock(mutex_);
        if (!strand_) {
            return;
        }
        queued_bytes_ += d.subject.size() + d.data.size();
        deliveries_.push_back(std::move(d));
        if (!wake_posted_) {
            wake_posted_ = true;
            boost::asio::post(strand_, [client = client_, wake = std::move(wake)]() mutable {
                if (auto c = client.lock()) {
                    wake(*c);
                }
            });
        }
    }
    // On the strand: everything queued, oldest first; the next delivery wakes again.
    std::vector<nats_delivery> take_deliveries() {
        std::vector<nats_delivery> taken;
        std::lock_guard lock(mutex_);
        taken.swap(deliveries_);
        queued_bytes_ = 0;
        wake_posted_ = false;
        return taken;
    }
    // Whether the queue holds at least `count` messages or `bytes` bytes.
    bool queue_full(std::size_t count, std::size_t bytes) const {
        std::lock_guard lock(mutex_);
        return deliveries_.size() >= count || queued_bytes_ >= bytes;
    }

    // Reconnect backoff bounds, for nats.c's reconnect thread.
    std::chrono::milliseconds backoff_min() const noexcept { return backoff_min_; }
    std::chrono::milliseconds backoff_max() const noexcept { return backoff_max_; }

    // Nothing is posted after this returns; idempotent, from any thread.
    void close();
    // Whether the io_context shut down (its executor must not be used any more).
    bool context_gone() const;

  private:
    nats_link() = default;
    friend class nats_link_service;
    void context_shutdown();

    mutable std::mutex mutex_;
    std::uint64_t id_ = 0;
    boost::asio::any_io_executor strand_;
    std::weak_ptr<nats_client> client_;
    bool context_gone_ = false;
    std::vector<nats_delivery> deliveries_;
    std::size_t queued_bytes_ = 0;
    bool wake_posted_ = false;
    std::chrono::milliseconds backoff_min_{};
    std::chrono::milliseconds backoff_max_{};
};

}  // namespace broadcaster::detail
