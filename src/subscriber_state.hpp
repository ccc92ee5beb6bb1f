#pragma once

#include "event_ring.hpp"
#include "pending_receives.hpp"

#include <broadcaster/options.hpp>
#include <broadcaster/subscriber.hpp>

#include <boost/asio/any_completion_executor.hpp>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/io_context.hpp>

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <variant>

namespace broadcaster::detail {

// The shared state behind a subscriber handle: its bounded queue, a pending receive,
// and why it ended. The core pushes from the broadcast's strand; the app receives
// from any thread. A small mutex guards it so that receiving never has to hop onto
// the strand; it is never held while user code runs.
class subscriber_state : public std::enable_shared_from_this<subscriber_state> {
  public:
    // An io_context's executor, counting work.
    using tracked_io_context =
        decltype(boost::asio::prefer(std::declval<boost::asio::io_context::executor_type>(),
                                     boost::asio::execution::outstanding_work.tracked));

    enum class push_result { queued, queued_dropping_oldest, dropped, overflowed, closed };

    subscriber_state(std::vector<std::string> channels, subscribe_options options,
                     boost::asio::any_io_executor default_executor);
    ~subscriber_state();

    // Called by the core for every event of one of the subscriber's channels.
    push_result push(const event& ev);

    // Counts `n` events dropped before they reached the queue (history_seam's bound).
    void count_dropped(std::uint64_t n);

    // Ends the subscriber: queued events can still be received, then `reason`.
    // `detail`: what the backend said about it, for error_message().
    void close(boost::system::error_code reason, std::string detail = {});

    // Ends the subscriber at once (handle destroyed): the queue is discarded and a
    // pending receive completes with operation_aborted.
    void abort();

    // Destroys a waiting receive's handler uncalled: its io_context is going away.
    void drop_pending();

    // Ends the subscriber at once with `reason`, replacing any earlier one: the queue
    // is discarded and a pending receive completes with `reason`.
    void end_now(boost::system::error_code reason);

    // True the first time only: the handle's unsubscribe runs once, whichever thread
    // calls it first.
    bool mark_released() noexcept { return !released_.exchange(true); }

    // Whether the core counts this subscriber as active. Touched only on the core's
    // strand.
    bool attached = false;

    void async_receive(receive_handler handler, receive_executor executor = {});
    std::optional<event> try_receive();
    std::size_t try_receive_some(std::vector<event>& out, std::size_t max);
    std::optional<event> receive_for(std::chrono::milliseconds timeout);

    bool is_open() const;
    boost::system::error_code error() const;
    std::string error_message() const;
    std::uint64_t dropped() const;
    std::size_t queued() const;
    const std::vector<std::string>& channels() const noexcept { return channels_; }
    // Whether channels() are patterns (subscribe_options::pattern).
    bool patterns() const noexcept { return patterns_; }

  private:
    void end(boost::system::error_code reason, bool replace);
    // Registers with the context's pending_receives; false once it is shutting down.
    bool known_to_context();
    void cancel_receive(std::uint64_t receive_id);
    // The executor a receive's handler runs on, tracked while the receive is pending:
    // an io_context's when it is one (a socket's, say: the cheapest to complete on),
    // another I/O executor (see receive_executor_of), or the type-erased handler's own.
    // One at a time, so one variant: an idle subscriber holds one.
    using handler_work =
        std::variant<std::monostate, tracked_io_context, boost::asio::any_io_executor,
                     boost::asio::any_completion_executor>;
    // Takes the pending receive out of the state; complete it after unlocking.
    struct taken_receive {
        receive_handler handler;
        boost::asio::cancellation_slot slot;
        handler_work work;
    };
    // A receive completed at once, without waiting.
    static taken_receive immediate(receive_handler handler, boost::asio::any_io_executor executor);
    struct run_receive;  // a taken receive's completion, posted to its executor
    taken_receive take_pending();
    event pop_front_locked() noexcept;
    void wake_blocking_receives();  // with the lock held
    void complete(taken_receive&& receive, boost::system::error_code ec, event ev);

    const std::vector<std::string> channels_;
    const std::size_t capacity_;
    const std::size_t max_bytes_;
    const overflow_policy policy_;
    const boost::asio::any_io_executor default_executor_;

    bool patterns_ = false;
    mutable std::mutex mutex_;
    // Only for blocking receives (blocking_broadcast), made by the first: most
    // subscribers never block.
    std::unique_ptr<std::condition_variable> blocking_ready_;
    int blocking_waiters_ = 0;
    event_ring queue_;
    std::size_t queued_bytes_ = 0;  // message bytes in `queue_`
    // queue_.size(), for queued() and try_receive() to read without the lock.
    std::atomic<std::size_t> queued_count_{0};
    std::uint64_t dropped_ = 0;
    bool closed_ = false;
    boost::system::error_code close_reason_;
    std::string close_detail_;  // of close_reason_, if the backend gave one
    receive_handler pending_;
    boost::asio::cancellation_slot pending_slot_;
    handler_work pending_work_;
    std::uint64_t pending_id_ = 0;
    // Where waiting receives are known, so that their io_context can destroy them;
    // set by the first receive that waits.
    std::shared_ptr<receive_registry> registry_;
    std::atomic<bool> released_{false};
};

}  // namespace broadcaster::detail
