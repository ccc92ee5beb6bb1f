#pragma once

#include "../completion.hpp"

#include <broadcaster/backend.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/cancellation_type.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/post.hpp>

#include <chrono>
#include <cstdint>
#include <list>
#include <memory>
#include <utility>

namespace broadcaster::detail {

// A client backend's publishes, in order (redis://, postgres://): the first
// `in_flight()` were handed to the broker and await its answer; the others wait to be
// sent. Each has a deadline. A waiting publish can be cancelled through its handler's
// cancellation slot: it leaves the queue, is never sent, and completes with
// operation_aborted. Entries live in a std::list because a cancelled one leaves from
// the middle and any_completion_handler must never be assigned (see backend.hpp).
// Runs on the backend's strand.
template <typename Payload>
class publish_queue {
  public:
    using clock = std::chrono::steady_clock;
    struct entry {
        std::uint64_t id;
        Payload payload;
        backend::completion_handler handler;
        clock::time_point deadline;
    };
    using iterator = typename std::list<entry>::iterator;

    explicit publish_queue(boost::asio::any_io_executor strand) : strand_(std::move(strand)) {}

    // Appends a waiting publish. If its handler has a cancellation slot, a cancellation
    // posts `client->cancel_publish(id)` to the strand (the client may be gone by then,
    // and the publish sent or completed: it then finds nothing to cancel).
    template <typename Client>
    void push(Payload payload, backend::completion_handler handler, clock::time_point deadline,
              const std::shared_ptr<Client>& client) {
        const auto id = ++last_id_;
        if (auto slot = boost::asio::get_associated_cancellation_slot(handler);
            slot.is_connected()) {
            slot.assign([weak = std::weak_ptr<Client>(client), strand = strand_,
                         id](boost::asio::cancellation_type) {
                boost::asio::post(strand, [weak, id] {
                    if (const auto self = weak.lock()) {
                        self->cancel_publish(id);
                    }
                });
            });
        }
        items_.push_back({id, std::move(payload), std::move(handler), deadline});
    }

    bool empty() const noexcept { return items_.empty(); }
    std::size_t size() const noexcept { return items_.size(); }
    std::size_t in_flight() const noexcept { return in_flight_; }
    entry& front() { return items_.front(); }
    iterator begin() { return items_.begin(); }
    iterator end() { return items_.end(); }
    // The first publish not yet handed to the broker.
    iterator first_waiting() { return std::next(items_.begin(), in_flight_); }

    // The first `n` waiting publishes were handed to the broker.
    void mark_sent(std::size_t n) noexcept { in_flight_ += n; }

    // Completes the oldest publish in flight with `ec`.
    void complete_front(boost::system::error_code ec) {
        complete(items_.begin(), ec);
        --in_flight_;
    }

    // Completes every publish in flight with `ec` (their answers will not come).
    void complete_in_flight(boost::system::error_code ec) {
        while (in_flight_ > 0 && !items_.empty()) {
            complete_front(ec);
        }
        in_flight_ = 0;
    }

    // Completes every publish with `ec`.
    void complete_all(boost::system::error_code ec) {
        while (!items_.empty()) {
            complete(items_.begin(), ec);
        }
        in_flight_ = 0;
    }

    // Completes the waiting publish at `it` with `ec`: it is never sent.
    void complete_waiting(iterator it, boost::system::error_code ec) { complete(it, ec); }

    // The waiting publish with `id`, or end() (sent, completed, or never there).
    iterator find_waiting(std::uint64_t id) {
        for (auto it = first_waiting(); it != items_.end(); ++it) {
            if (it->id == id) {
                return it;
            }
        }
        return items_.end();
    }

  private:
    void complete(iterator it, boost::system::error_code ec) {
        auto handler = std::move(it->handler);
        items_.erase(it);
        // Cleared here, on the strand where the core emits it: after this, the slot
        // handler cannot run.
        if (auto slot = boost::asio::get_associated_cancellation_slot(handler);
            slot.is_connected()) {
            slot.clear();
        }
        post_completion(std::move(handler), strand_, ec);
    }

    boost::asio::any_io_executor strand_;
    std::list<entry> items_;
    std::size_t in_flight_ = 0;
    std::uint64_t last_id_ = 0;
};

}  // namespace broadcaster::detail
