#pragma once

/// @file
/// `broadcaster::broadcast`: publish/subscribe over the broker a URL names.

#include <broadcaster/backend.hpp>
#include <broadcaster/channel_list.hpp>
#include <broadcaster/event.hpp>
#include <broadcaster/export.hpp>
#include <broadcaster/options.hpp>
#include <broadcaster/subscriber.hpp>
#include <broadcaster/subscription.hpp>

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/system/error_code.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

namespace broadcaster {

/// Counters of one broadcast since it was constructed. Read with `broadcast::stats()`.
struct broadcast_stats {
    /// Messages the backend accepted from `async_publish`.
    std::uint64_t published = 0;
    /// Events received from the backend.
    std::uint64_t received = 0;
    /// Events queued to local subscribers (one event to n subscribers counts n).
    std::uint64_t delivered = 0;
    /// Events dropped because a subscriber's queue was full.
    std::uint64_t dropped = 0;
    /// Channels with at least one local subscriber (one broker subscription each).
    std::uint64_t active_channels = 0;
    /// Local subscribers.
    std::uint64_t active_subscribers = 0;
    /// Times the backend re-established a lost connection.
    std::uint64_t reconnects = 0;
};

/// Called on every connection state change, with the error that caused it, if any.
using state_observer = std::function<void(connection_state, boost::system::error_code)>;

/// Called for each event of a callback subscription.
using event_callback = std::function<void(const event&)>;

namespace detail {
class broadcast_core;
using error_handler = boost::asio::any_completion_handler<void(boost::system::error_code)>;
using subscribe_handler =
    boost::asio::any_completion_handler<void(boost::system::error_code, subscriber)>;
using subscription_handler =
    boost::asio::any_completion_handler<void(boost::system::error_code, subscription)>;
using history_handler = backend::history_handler;
BROADCASTER_EXPORT void async_connect(const std::shared_ptr<broadcast_core>& core,
                                      error_handler handler);
BROADCASTER_EXPORT void async_disconnect(const std::shared_ptr<broadcast_core>& core,
                                         error_handler handler);
BROADCASTER_EXPORT void async_shutdown(const std::shared_ptr<broadcast_core>& core,
                                       error_handler handler);
BROADCASTER_EXPORT void async_publish(const std::shared_ptr<broadcast_core>& core,
                                      std::string channel, std::string message,
                                      error_handler handler);
BROADCASTER_EXPORT void async_subscribe(const std::shared_ptr<broadcast_core>& core,
                                        std::vector<std::string> channels,
                                        subscribe_options options, subscribe_handler handler);
BROADCASTER_EXPORT void async_history(const std::shared_ptr<broadcast_core>& core,
                                      std::string channel, std::size_t limit,
                                      history_handler handler);
BROADCASTER_EXPORT void async_subscribe_callback(const std::shared_ptr<broadcast_core>& core,
                                                 std::vector<std::string> channels,
                                                 event_callback on_event, subscribe_options options,
                                                 subscription_handler handler);
}  // namespace detail

template <typename Executor>
class rebound_broadcast;

/// Publish/subscribe over one broker, chosen by URL.
///
/// ```
/// broadcaster::broadcast bc(io.get_executor(), "redis://localhost:6379");
/// co_await bc.async_connect(asio::use_awaitable);
/// auto sub = co_await bc.async_subscribe("chatroom", asio::use_awaitable);
/// co_await bc.async_publish("chatroom", "hello", asio::use_awaitable);
/// broadcaster::event ev = co_await sub.async_receive(asio::use_awaitable);
/// ```
///
/// The broadcast keeps one broker subscription per channel however many local
/// subscribers it has, and fans each incoming event out to their queues; the message
/// is stored once and shared by all of them.
///
/// Asynchronous operations take any Asio completion token (`use_awaitable`, a
/// callback, `use_future`, `deferred`, ...). Handlers run on their associated
/// executor, by default the broadcast's executor. Without a token they use the
/// default one of `executor_type`, `boost::asio::deferred`: the call returns an
/// operation that starts when it is awaited or invoked with a token.
/// `boost::asio::use_awaitable_t<>::as_default_on(std::move(bc))` (see
/// `rebind_executor`) makes `use_awaitable` the default instead.
///
/// Thread safety: every member function may be called from any thread, concurrently.
/// The broadcast's state lives on an internal strand of its executor.
///
/// Cancellation: `async_connect`, `async_subscribe`, `async_subscribe_callback` and
/// `subscriber::async_receive` support per-operation cancellation (the handler's
/// associated cancellation slot, e.g. through `||` of awaitable operators or
/// `boost::asio::bind_cancellation_slot`) of every type (terminal, partial, total): a
/// cancelled operation completes at once with `boost::asio::error::operation_aborted`
/// and leaves nothing behind. `async_publish` relays cancellation to the backend, which
/// may cancel a message still queued (not yet written). See docs/operations.md.
///
/// Lifetime: destroying the broadcast disconnects it in the background (on its
/// executor); its subscribers then end with `error::end_of_stream`. Pending
/// operations still complete. Subscribers may outlive the broadcast. To know when the
/// background work is over (every socket closed, every handler run), call
/// `async_shutdown` first. Destroying the executor's `io_context` destroys whatever is
/// left, handlers included, uncalled.
class BROADCASTER_EXPORT broadcast {
  public:
    /// The executor handlers run on by default. Its default completion token,
    /// `broadcaster::default_completion_token_t<executor_type>`
    /// (`boost::asio::deferred`), is the one operations called without a token use.
    using executor_type = boost::asio::any_io_executor;

    /// The same broadcast with `Executor` as `executor_type`, so with that executor's
    /// default completion token (what `boost::asio::use_awaitable_t<>::as_default_on`
    /// uses). `other` is `rebound_broadcast<Executor>`, a `broadcast` that only
    /// changes the default token and the type `get_executor()` returns.
    template <typename Executor>
    struct rebind_executor {
        /// The broadcast type when rebound to `Executor`.
        using other = rebound_broadcast<Executor>;
    };

    /// Makes a broadcast for `url`, whose scheme picks the backend (see README).
    /// Does not connect: call `async_connect`.
    /// @throws boost::system::system_error with `error::invalid_url`,
    ///   `error::unknown_scheme` or `error::backend_not_built`, whose message names the
    ///   URL with its password masked, or a backend's own error for a URL it rejects.
    broadcast(executor_type executor, std::string_view url, broadcast_options options = {});

    /// As above, on the executor of `context` (e.g. an `io_context`).
    template <typename ExecutionContext>
    requires std::is_convertible_v<ExecutionContext&, boost::asio::execution_context&> broadcast(
        ExecutionContext& context, std::string_view url, broadcast_options options = {})
        : broadcast(executor_type(context.get_executor()), url, std::move(options)) {}

    /// Makes a broadcast over a backend object, e.g. one of the app's own (which
    /// takes its settings in its own constructor).
    broadcast(executor_type executor, std::unique_ptr<backend> backend);

    /// Takes over `other`; using `other` afterwards is undefined.
    broadcast(broadcast&& other) noexcept;
    /// Disconnects this broadcast in the background, then takes over `other`.
    broadcast& operator=(broadcast&& other) noexcept;
    broadcast(const broadcast&) = delete;
    broadcast& operator=(const broadcast&) = delete;
    /// Disconnects in the background (see "Lifetime" above).
    ~broadcast();

    /// The executor completion handlers run on by default.
    executor_type get_executor() const noexcept;

    /// The URL with its password masked; `"custom"` for a broadcast over a backend object.
    const std::string& url() const noexcept;

    /// Connects to the broker. Signature: `void(boost::system::error_code)`.
    /// Completes at once if already connected; several connects at once share one
    /// attempt. Errors: `error::unreachable` (not resolved, refused, or no answer within
    /// the connect timeout), `error::authentication_failed`, `error::broker_error`,
    /// `error::protocol_error`, a TLS handshake error, and
    /// `boost::asio::error::operation_aborted` when cancelled or cut by
    /// `async_disconnect` / `async_shutdown` (docs/errors.md lists them all).
    ///
    /// Cancellation (terminal, partial, total): the cancelled operation completes at
    /// once with `operation_aborted`. When no other connect waits for the attempt, it is
    /// abandoned: the backend closes what it opened and the broadcast is
    /// `connection_state::disconnected` again, so a later `async_connect` starts afresh.
    template <boost::asio::completion_token_for<void(boost::system::error_code)> CompletionToken =
                  broadcaster::default_completion_token_t<executor_type>>
    auto async_connect(CompletionToken&& token = CompletionToken()) {
        return boost::asio::async_initiate<CompletionToken, void(boost::system::error_code)>(
            [](auto handler, std::shared_ptr<detail::broadcast_core> core) {
                detail::async_connect(core, detail::error_handler(std::move(handler)));
            },
            token, core_);
    }

    /// Disconnects: every subscriber ends with `error::end_of_stream` once it has
    /// received what was queued, and every broker subscription is dropped.
    /// Signature: `void(boost::system::error_code)`. The broadcast can connect again.
    /// A connect or subscribe still waiting completes with an error. Not cancellable.
    template <boost::asio::completion_token_for<void(boost::system::error_code)> CompletionToken =
                  broadcaster::default_completion_token_t<executor_type>>
    auto async_disconnect(CompletionToken&& token = CompletionToken()) {
        return boost::asio::async_initiate<CompletionToken, void(boost::system::error_code)>(
            [](auto handler, std::shared_ptr<detail::broadcast_core> core) {
                detail::async_disconnect(core, detail::error_handler(std::move(handler)));
            },
            token, core_);
    }

    /// Disconnects as `async_disconnect` does, then completes once the backend has
    /// let go of everything: every connection of the backend is closed, and every
    /// handler the broadcast gave the backend (connect, subscribe, publish, ...
    /// completions) has run or been destroyed. Signature:
    /// `void(boost::system::error_code)`; the code is always empty. Afterwards the
    /// broadcast is `connection_state::disconnected` and may connect again; nothing
    /// of it is left running on the executor, and no socket of it is open.
    /// Not cancellable. Operations started after it are not waited for.
    template <boost::asio::completion_token_for<void(boost::system::error_code)> CompletionToken =
                  broadcaster::default_completion_token_t<executor_type>>
    auto async_shutdown(CompletionToken&& token = CompletionToken()) {
        return boost::asio::async_initiate<CompletionToken, void(boost::system::error_code)>(
            [](auto handler, std::shared_ptr<detail::broadcast_core> core) {
                detail::async_shutdown(core, detail::error_handler(std::move(handler)));
            },
            token, core_);
    }

    /// Publishes `message` on `channel`. Signature: `void(boost::system::error_code)`.
    /// Completes once the backend accepted the message. Messages published from one
    /// thread (or one coroutine) reach every subscriber in publish order.
    /// Errors: `error::not_connected` (not connected yet, or disconnected),
    /// `error::connection_lost` (written, unacknowledged: may have been published),
    /// `error::reconnect_timeout` or `error::cluster_unavailable` (nothing sent),
    /// `error::timeout`, `error::invalid_channel`, `error::payload_too_large`,
    /// `error::broker_error`, and `boost::asio::error::operation_aborted` when cut by
    /// the app's disconnect or shutdown (or cancelled, see below).
    ///
    /// Cancellation: a cancellation emitted on the handler's slot reaches the backend
    /// (relayed to the backend's own slot, emitted on its strand) with its type. A
    /// backend that queues publishes (`redis://`, `postgres://`) then completes a publish
    /// with `boost::asio::error::operation_aborted` while it is still queued, not yet
    /// written: it is never sent. Once written, the publish completes normally
    /// whatever is emitted. Other backends ignore it (see docs/operations.md).
    template <boost::asio::completion_token_for<void(boost::system::error_code)> CompletionToken =
                  broadcaster::default_completion_token_t<executor_type>>
    auto async_publish(std::string channel, std::string message,
                       CompletionToken&& token = CompletionToken()) {
        return boost::asio::async_initiate<CompletionToken, void(boost::system::error_code)>(
            [](auto handler, std::shared_ptr<detail::broadcast_core> core, std::string channel,
               std::string message) {
                detail::async_publish(core, std::move(channel), std::move(message),
                                      detail::error_handler(std::move(handler)));
            },
            token, core_, std::move(channel), std::move(message));
    }

    /// Subscribes to one or several channels. Signature:
    /// `void(boost::system::error_code, subscriber)`.
    /// Completes once the broker has confirmed every channel: anything published
    /// afterwards is received. Errors: `error::not_connected`, `error::invalid_channel`,
    /// `error::connection_lost`, `error::timeout`, `error::cluster_unavailable`,
    /// `error::broker_error`, and `boost::asio::error::operation_aborted` when cut by
    /// the app's disconnect or shutdown (or cancelled, see below); on error nothing
    /// stays subscribed.
    ///
    /// Cancellation (terminal, partial, total) while waiting for the broker: completes
    /// at once with `boost::asio::error::operation_aborted` and nothing stays
    /// subscribed; a channel this was the only subscriber of drops its broker
    /// subscription (once the broker answered the subscribe in flight). Other
    /// subscribers of the same channels are not affected.
    template <boost::asio::completion_token_for<void(boost::system::error_code, subscriber)>
                  CompletionToken = broadcaster::default_completion_token_t<executor_type>>
    auto async_subscribe(channel_list channels, subscribe_options options,
                         CompletionToken&& token = CompletionToken()) {
        return boost::asio::async_initiate<CompletionToken,
                                           void(boost::system::error_code, subscriber)>(
            [](auto handler, std::shared_ptr<detail::broadcast_core> core,
               std::vector<std::string> channels, subscribe_options options) {
                detail::async_subscribe(core, std::move(channels), options,
                                        detail::subscribe_handler(std::move(handler)));
            },
            token, core_, std::move(channels).names(), options);
    }

    /// As above, with the default `subscribe_options` (1024 events, drop oldest).
    template <boost::asio::completion_token_for<void(boost::system::error_code, subscriber)>
                  CompletionToken = broadcaster::default_completion_token_t<executor_type>>
    auto async_subscribe(channel_list channels, CompletionToken&& token = CompletionToken()) {
        return async_subscribe(std::move(channels), subscribe_options{},
                               std::forward<CompletionToken>(token));
    }

    /// Subscribes and calls `on_event` for every event, in order, until the returned
    /// `subscription` is destroyed. Signature:
    /// `void(boost::system::error_code, subscription)`.
    /// `on_event` runs on the broadcast's executor, never concurrently with itself; it
    /// should be quick (events queue up behind it, bounded by `options`).
    /// Errors and cancellation: as `async_subscribe`.
    template <boost::asio::completion_token_for<void(boost::system::error_code, subscription)>
                  CompletionToken = broadcaster::default_completion_token_t<executor_type>>
    auto async_subscribe_callback(channel_list channels, event_callback on_event,
                                  subscribe_options options,
                                  CompletionToken&& token = CompletionToken()) {
        return boost::asio::async_initiate<CompletionToken,
                                           void(boost::system::error_code, subscription)>(
            [](auto handler, std::shared_ptr<detail::broadcast_core> core,
               std::vector<std::string> channels, event_callback on_event,
               subscribe_options options) {
                detail::async_subscribe_callback(core, std::move(channels), std::move(on_event),
                                                 options,
                                                 detail::subscription_handler(std::move(handler)));
            },
            token, core_, std::move(channels).names(), std::move(on_event), options);
    }

    /// As above, with the default `subscribe_options`.
    template <boost::asio::completion_token_for<void(boost::system::error_code, subscription)>
                  CompletionToken = broadcaster::default_completion_token_t<executor_type>>
    auto async_subscribe_callback(channel_list channels, event_callback on_event,
                                  CompletionToken&& token = CompletionToken()) {
        return async_subscribe_callback(std::move(channels), std::move(on_event),
                                        subscribe_options{}, std::forward<CompletionToken>(token));
    }

    /// The `limit` most recent events of `channel` that the broker keeps (0: all it
    /// keeps), oldest first, each with its `event::position()`. Signature:
    /// `void(boost::system::error_code, std::vector<broadcaster::event>)`.
    /// Errors: `error::not_connected`, `error::history_not_supported` on a backend
    /// that keeps no history (see docs/history.md), or the backend's own.
    template <boost::asio::completion_token_for<void(boost::system::error_code, std::vector<event>)>
                  CompletionToken = broadcaster::default_completion_token_t<executor_type>>
    auto async_history(std::string channel, std::size_t limit,
                       CompletionToken&& token = CompletionToken()) {
        return boost::asio::async_initiate<CompletionToken,
                                           void(boost::system::error_code, std::vector<event>)>(
            [](auto handler, std::shared_ptr<detail::broadcast_core> core, std::string channel,
               std::size_t limit) {
                detail::async_history(core, std::move(channel), limit,
                                      detail::history_handler(std::move(handler)));
            },
            token, core_, std::move(channel), limit);
    }

    /// Sets the function called on every connection state change (replacing any
    /// previous one; an empty function removes it). It runs on the broadcast's executor.
    /// Set it before `async_connect` to see every change. Calls still queued when the
    /// broadcast is destroyed are dropped (one already running on another thread
    /// finishes).
    void on_state_change(state_observer observer);

    /// The current connection state.
    connection_state state() const noexcept;

    /// A snapshot of the counters. Cheap; any thread.
    broadcast_stats stats() const noexcept;

  private:
    std::shared_ptr<detail::broadcast_core> core_;
};

/// A `broadcast` whose `executor_type` is `Executor`: its operations called without
/// a token use `broadcaster::default_completion_token_t<Executor>`, e.g.
/// `use_awaitable` for `boost::asio::use_awaitable_t<>::as_default_on_t<broadcast>`.
/// Everything else is the `broadcast`'s (the same object, not a copy of its API):
///
/// ```
/// using awaitable_broadcast = asio::use_awaitable_t<>::as_default_on_t<broadcaster::broadcast>;
/// awaitable_broadcast bc(io, "memory://");
/// co_await bc.async_connect();
/// ```
///
/// `Executor` must be constructible from `boost::asio::any_io_executor` (as the
/// `executor_with_default` types of Asio's tokens are); handlers still run where a
/// `broadcast`'s do.
template <typename Executor>
class rebound_broadcast : public broadcast {
    static_assert(std::is_constructible_v<Executor, boost::asio::any_io_executor>,
                  "rebound_broadcast: Executor must be constructible from any_io_executor");

  public:
    /// `Executor`, whose default completion token operations without a token use.
    using executor_type = Executor;

    using broadcast::broadcast;
    /// Takes over `other` (e.g. in `as_default_on(std::move(bc))`).
    rebound_broadcast(broadcast&& other) noexcept : broadcast(std::move(other)) {}

    /// The broadcast's executor, as an `executor_type`.
    executor_type get_executor() const noexcept { return executor_type(broadcast::get_executor()); }

    // Each operation below is `broadcast`'s, with `executor_type`'s default token.

    /// `broadcast::async_connect`.
    template <boost::asio::completion_token_for<void(boost::system::error_code)> CompletionToken =
                  broadcaster::default_completion_token_t<executor_type>>
    auto async_connect(CompletionToken&& token = CompletionToken()) {
        return broadcast::async_connect(std::forward<CompletionToken>(token));
    }

    /// `broadcast::async_disconnect`.
    template <boost::asio::completion_token_for<void(boost::system::error_code)> CompletionToken =
                  broadcaster::default_completion_token_t<executor_type>>
    auto async_disconnect(CompletionToken&& token = CompletionToken()) {
        return broadcast::async_disconnect(std::forward<CompletionToken>(token));
    }

    /// `broadcast::async_shutdown`.
    template <boost::asio::completion_token_for<void(boost::system::error_code)> CompletionToken =
                  broadcaster::default_completion_token_t<executor_type>>
    auto async_shutdown(CompletionToken&& token = CompletionToken()) {
        return broadcast::async_shutdown(std::forward<CompletionToken>(token));
    }

    /// `broadcast::async_publish`.
    template <boost::asio::completion_token_for<void(boost::system::error_code)> CompletionToken =
                  broadcaster::default_completion_token_t<executor_type>>
    auto async_publish(std::string channel, std::string message,
                       CompletionToken&& token = CompletionToken()) {
        return broadcast::async_publish(std::move(channel), std::move(message),
                                        std::forward<CompletionToken>(token));
    }

    /// `broadcast::async_subscribe`.
    template <boost::asio::completion_token_for<void(boost::system::error_code, subscriber)>
                  CompletionToken = broadcaster::default_completion_token_t<executor_type>>
    auto async_subscribe(channel_list channels, subscribe_options options,
                         CompletionToken&& token = CompletionToken()) {
        return broadcast::async_subscribe(std::move(channels), options,
                                          std::forward<CompletionToken>(token));
    }

    /// `broadcast::async_subscribe`, with the default `subscribe_options`.
    template <boost::asio::completion_token_for<void(boost::system::error_code, subscriber)>
                  CompletionToken = broadcaster::default_completion_token_t<executor_type>>
    auto async_subscribe(channel_list channels, CompletionToken&& token = CompletionToken()) {
        return broadcast::async_subscribe(std::move(channels),
                                          std::forward<CompletionToken>(token));
    }

    /// `broadcast::async_subscribe_callback`.
    template <boost::asio::completion_token_for<void(boost::system::error_code, subscription)>
                  CompletionToken = broadcaster::default_completion_token_t<executor_type>>
    auto async_subscribe_callback(channel_list channels, event_callback on_event,
                                  subscribe_options options,
                                  CompletionToken&& token = CompletionToken()) {
        return broadcast::async_subscribe_callback(std::move(channels), std::move(on_event),
                                                   options, std::forward<CompletionToken>(token));
    }

    /// `broadcast::async_history`.
    template <boost::asio::completion_token_for<void(boost::system::error_code, std::vector<event>)>
                  CompletionToken = broadcaster::default_completion_token_t<executor_type>>
    auto async_history(std::string channel, std::size_t limit,
                       CompletionToken&& token = CompletionToken()) {
        return broadcast::async_history(std::move(channel), limit,
                                        std::forward<CompletionToken>(token));
    }

    /// `broadcast::async_subscribe_callback`, with the default `subscribe_options`.
    template <boost::asio::completion_token_for<void(boost::system::error_code, subscription)>
                  CompletionToken = broadcaster::default_completion_token_t<executor_type>>
    auto async_subscribe_callback(channel_list channels, event_callback on_event,
                                  CompletionToken&& token = CompletionToken()) {
        return broadcast::async_subscribe_callback(std::move(channels), std::move(on_event),
                                                   std::forward<CompletionToken>(token));
    }
};

}  // namespace broadcaster
