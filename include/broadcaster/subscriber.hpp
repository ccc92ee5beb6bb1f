#pragma once

/// @file
/// `broadcaster::subscriber`: the receiving end of a subscription.

#include <broadcaster/detail/receive_executor.hpp>
#include <broadcaster/event.hpp>
#include <broadcaster/export.hpp>

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/system/error_code.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace broadcaster {

namespace detail {
class subscriber_state;
class broadcast_core;
using receive_handler = boost::asio::any_completion_handler<void(boost::system::error_code, event)>;
BROADCASTER_EXPORT void async_receive(const std::shared_ptr<subscriber_state>& state,
                                      const boost::asio::any_io_executor& fallback,
                                      receive_executor executor, receive_handler handler);
}  // namespace detail

/// The completion token operations use when called without one:
/// `boost::asio::default_completion_token_t<Executor>`, or `boost::asio::deferred_t`
/// when `Executor` names none (Boost 1.81 says `void` then, e.g. for
/// `any_io_executor`; later Asio versions say `deferred_t` too).
template <typename Executor>
using default_completion_token_t =
    std::conditional_t<std::is_void_v<boost::asio::default_completion_token_t<Executor>>,
                       boost::asio::deferred_t, boost::asio::default_completion_token_t<Executor>>;

template <typename Executor>
class rebound_subscriber;

/// A subscription to one or more channels, with its own bounded queue of events.
///
/// Obtained from `broadcast::async_subscribe`, which completes only once the broker
/// has confirmed every channel: anything published afterwards reaches this subscriber.
/// Move-only. Destroying it (or calling `unsubscribe`) ends the subscription; the
/// broadcast drops the broker subscription of a channel when its last local
/// subscriber is gone.
///
/// Events of one channel arrive in the order the backend delivered them. When the
/// queue is full, the `overflow_policy` chosen at subscribe time applies, and every
/// dropped event is counted in `dropped()`.
///
/// The subscriber ends when the broadcast disconnects (`error::end_of_stream`) or its
/// queue overflows under `overflow_policy::close` (`error::subscriber_overflow`):
/// receiving then returns what was still queued, then that error.
///
/// Thread safety: every member function except the move assignment may be called
/// from any thread, concurrently with the others (e.g. `unsubscribe()` on one thread
/// while another is in `try_receive()` or `receive_for()`). Like any object, the
/// handle must not be destroyed or assigned to while another thread still uses it;
/// destroying it while a receive is pending is fine (the receive then completes with
/// `boost::asio::error::operation_aborted`). One `async_receive` at a time.
class BROADCASTER_EXPORT subscriber {
  public:
    /// The executor handlers run on by default (the broadcast's). Its default
    /// completion token, `broadcaster::default_completion_token_t<executor_type>`
    /// (`boost::asio::deferred`), is the one `async_receive` uses without a token.
    using executor_type = boost::asio::any_io_executor;

    /// The same subscriber with `Executor` as `executor_type`, so with that executor's
    /// default completion token (what `boost::asio::use_awaitable_t<>::as_default_on`
    /// uses). `other` is `rebound_subscriber<Executor>`, a `subscriber` that only
    /// changes the default token and the type `get_executor()` returns.
    template <typename Executor>
    struct rebind_executor {
        /// The subscriber type when rebound to `Executor`.
        using other = rebound_subscriber<Executor>;
    };

    /// An empty handle, subscribed to nothing.
    subscriber() noexcept = default;
    /// Takes over `other`'s subscription; `other` becomes empty.
    subscriber(subscriber&& other) noexcept;
    /// Unsubscribes this handle first, then takes over `other`'s subscription.
    subscriber& operator=(subscriber&& other) noexcept;
    subscriber(const subscriber&) = delete;
    subscriber& operator=(const subscriber&) = delete;
    /// Unsubscribes.
    ~subscriber();

    /// Receives the next event. Signature: `void(boost::system::error_code, event)`.
    ///
    /// Completes at once if an event is queued, otherwise when one arrives.
    /// Errors: `error::end_of_stream` after the broadcast disconnected,
    /// `error::subscriber_overflow` after an overflow under `overflow_policy::close`,
    /// `boost::asio::error::operation_aborted` if the subscriber is destroyed or the
    /// operation cancelled (per-operation cancellation, all types), and
    /// `error::receive_in_progress` if another receive is pending.
    /// The handler runs on its associated executor (default: the broadcast's, also for
    /// a handle that was moved from or came with a failed subscribe; only a
    /// default-constructed handle, which knows no broadcast, falls back to
    /// `boost::asio::system_executor`). An empty handle completes with
    /// `error::end_of_stream`. While pending, the operation counts as outstanding work
    /// on that executor.
    ///
    /// Without a token it returns a `boost::asio::deferred` operation, started when
    /// awaited or invoked with a token.
    template <boost::asio::completion_token_for<void(boost::system::error_code, event)>
                  CompletionToken = broadcaster::default_completion_token_t<executor_type>>
    auto async_receive(CompletionToken&& token = CompletionToken()) {
        return boost::asio::async_initiate<CompletionToken, void(boost::system::error_code, event)>(
            [](auto handler, std::shared_ptr<detail::subscriber_state> state,
               executor_type fallback) {
                auto executor = detail::receive_executor_of(handler);
                detail::async_receive(state, fallback, std::move(executor),
                                      detail::receive_handler(std::move(handler)));
            },
            // The fallback is needed by an empty handle only: don't copy it otherwise.
            token, state_, state_ ? executor_type() : executor_);
    }

    /// The broadcast's executor (also for a handle that was moved from or came with a
    /// failed subscribe); a default-constructed handle has none (an empty executor).
    executor_type get_executor() const noexcept { return executor_; }

    /// Takes the next queued event without waiting; `std::nullopt` if none is queued.
    /// Use it after `async_receive` to drain a burst without suspending each time.
    std::optional<event> try_receive();

    /// Moves up to `max` queued events to the end of `out` under one lock; returns how
    /// many. The cheapest way to drain a busy subscriber.
    std::size_t try_receive_some(std::vector<event>& out, std::size_t max = SIZE_MAX);

    /// Blocks the calling thread until an event is queued or `timeout` passed.
    /// Returns `std::nullopt` on timeout or once the subscriber has ended (see `error()`).
    /// Never call it from a thread that runs the broadcast's executor.
    std::optional<event> receive_for(std::chrono::milliseconds timeout);

    /// Ends the subscription now: queued events are discarded, a pending receive
    /// completes with `operation_aborted`, and `error()` says `operation_aborted`.
    /// Idempotent; any thread, concurrently with the other calls (see above).
    void unsubscribe() noexcept;

    /// False once the subscriber has ended (see `error()`) or was moved from.
    bool is_open() const noexcept;

    /// Why the subscriber ended (`error::end_of_stream`, `error::subscriber_overflow`,
    /// `operation_aborted` after `unsubscribe`, `error::callback_failed` when the
    /// callback of a callback subscription threw), or an empty code while it is open.
    boost::system::error_code error() const;

    /// `error()` in words: its message, then what the backend said about it when it
    /// said something (redis-stream: the command an ACL refused, with Redis's reply),
    /// e.g. for a log. Empty while `error()` is. Never holds a password.
    std::string error_message() const;

    /// The channels this subscriber listens to.
    const std::vector<std::string>& channels() const noexcept;

    /// Number of events dropped because the queue was full.
    std::uint64_t dropped() const noexcept;

    /// Number of events queued right now.
    std::size_t queued() const noexcept;

    /// True unless empty or moved from (still true after `unsubscribe()`).
    explicit operator bool() const noexcept { return state_ != nullptr; }

  private:
    friend class detail::broadcast_core;
    subscriber(std::shared_ptr<detail::subscriber_state> state,
               std::weak_ptr<detail::broadcast_core> core, executor_type executor) noexcept
        : state_(std::move(state)), core_(std::move(core)), executor_(std::move(executor)) {}

    // Set once by the constructor or an assignment: concurrent calls only read them.
    std::shared_ptr<detail::subscriber_state> state_;
    std::weak_ptr<detail::broadcast_core> core_;
    // The broadcast's executor; kept by a moved-from handle, empty if default-constructed.
    executor_type executor_;
};

/// A `subscriber` whose `executor_type` is `Executor`: `async_receive` without a
/// token uses `broadcaster::default_completion_token_t<Executor>`, e.g. `use_awaitable`
/// for `boost::asio::use_awaitable_t<>::as_default_on_t<subscriber>`. Everything else
/// is the `subscriber`'s. `Executor` must be constructible from
/// `boost::asio::any_io_executor`.
template <typename Executor>
class rebound_subscriber : public subscriber {
    static_assert(std::is_constructible_v<Executor, boost::asio::any_io_executor>,
                  "rebound_subscriber: Executor must be constructible from any_io_executor");

  public:
    /// `Executor`, whose default completion token `async_receive` without a token uses.
    using executor_type = Executor;

    /// An empty handle, subscribed to nothing.
    rebound_subscriber() noexcept = default;
    /// Takes over `other`'s subscription (e.g. in `as_default_on(std::move(sub))`).
    rebound_subscriber(subscriber&& other) noexcept : subscriber(std::move(other)) {}

    /// The broadcast's executor, as an `executor_type`.
    executor_type get_executor() const noexcept {
        return executor_type(subscriber::get_executor());
    }

    /// `subscriber::async_receive`, with `executor_type`'s default token.
    template <boost::asio::completion_token_for<void(boost::system::error_code, event)>
                  CompletionToken = broadcaster::default_completion_token_t<executor_type>>
    auto async_receive(CompletionToken&& token = CompletionToken()) {
        return subscriber::async_receive(std::forward<CompletionToken>(token));
    }
};

}  // namespace broadcaster
