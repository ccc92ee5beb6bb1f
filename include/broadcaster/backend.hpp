#pragma once

/// @file
/// The backend interface, for adding a broker: implement `backend`, then register a
/// factory for a URL scheme with `register_backend`. Everything a backend needs is in
/// this header; docs/custom-backends.md walks through a complete example
/// (examples/custom_backend).

#include <broadcaster/event.hpp>
#include <broadcaster/export.hpp>
#include <broadcaster/options.hpp>

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/post.hpp>
#include <boost/system/error_code.hpp>

#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace broadcaster {

namespace detail {
class backend_access;
}  // namespace detail

/// Where a backend sends what it receives. Implemented by the broadcast core.
///
/// Thread safety: call it on the backend's executor (`backend::executor()`) only,
/// never from the backend's own threads.
class BROADCASTER_EXPORT backend_sink {
  public:
    /// Hands over one incoming event. The core fans it out to the local subscribers of
    /// `ev.channel()` without copying the message. Any channel and payload may be
    /// delivered: events of a channel nobody subscribes to (e.g. one arriving just
    /// after its unsubscribe) are counted as received and dropped. Events of one
    /// channel must be delivered in the broker's order.
    virtual void deliver(event ev) = 0;

    /// Reports a change of the connection to the broker; `ec` says why, for a failure.
    /// A backend reports `connection_state::reconnecting` (with the error) when it lost
    /// its connection, and `connection_state::connected` (with no error) once it is back
    /// and every subscription is in place again. Other states are the broadcast's own:
    /// a backend never reports them.
    virtual void state_changed(connection_state state, boost::system::error_code ec) = 0;

    /// History only (see docs/history.md): reports that events of `channel` were lost
    /// for good between the last one delivered and what the broker still keeps (e.g.
    /// trimmed while the connection was down). The core ends that channel's
    /// subscribers with `error::history_gap` after what they already have; the backend
    /// goes on delivering from the oldest event still kept.
    virtual void history_gap(std::string_view channel) { (void)channel; }

    /// Patterns only: as `history_gap`, for the subscribers of `pattern` (events that
    /// matched it were lost, e.g. dropped by a client library that fell behind).
    virtual void pattern_gap(std::string_view pattern) { (void)pattern; }

    /// Reports that the broker refused `channel`, which was subscribed, when the backend
    /// subscribed it again after a reconnect or read it later (e.g. Redis `-NOPERM` after
    /// an ACL change): nothing of it will be delivered. The core ends that channel's
    /// subscribers with `error::subscription_refused` after what they already have, so
    /// none waits in silence; the backend no longer holds the channel. The default does
    /// nothing.
    virtual void subscription_refused(std::string_view channel) { (void)channel; }

    /// As `subscription_refused(channel)`, with what the broker refused in words (e.g.
    /// the command an ACL refuses), which the subscribers' `error_message()` then
    /// includes. Never put a secret in it. The default drops `reason`.
    virtual void subscription_refused(std::string_view channel, std::string_view reason) {
        (void)reason;
        subscription_refused(channel);
    }

    /// Reports that the connection ended for good and the backend will not reconnect
    /// by itself (e.g. its client library gave up after a broker error it does not
    /// retry). The broadcast becomes disconnected, with `ec` as the reason: every
    /// subscriber ends with `error::end_of_stream` after what it already has, a
    /// subscribe still waiting fails with `ec`, the backend is disconnected, and the app
    /// may connect again. The default does nothing.
    virtual void connection_failed(boost::system::error_code ec) { (void)ec; }

    /// Patterns only (see `backend::async_subscribe_pattern`): hands over an event that
    /// arrived for the subscription to `pattern`; `ev.channel()` is the channel it was
    /// published on. The core fans it out to that pattern's subscribers. Events of one
    /// pattern must be delivered in the broker's order.
    virtual void deliver_matched(std::string_view pattern, event ev) {
        (void)pattern;
        (void)ev;
    }

  protected:
    ~backend_sink() = default;
};

/// What `backend::async_history` is asked for.
struct history_query {
    /// Only events after this position (an `event::position()` of the channel);
    /// none: from the oldest kept.
    std::optional<std::string> after;
    /// At most this many, the most recent ones; 0: all of them.
    std::size_t limit = 0;
};

/// What a backend factory is given to build a backend.
struct backend_config {
    /// The URL as given by the user. Contains secrets: never log it.
    std::string url;
    /// The URL with secrets masked (`redact_url`): for logs and error messages.
    std::string redacted_url;
    /// The broadcast's options; a backend's URL query options override them.
    broadcast_options options;
};

/// Marks a lambda move-only. Capture one (`[once = broadcaster::move_only{}, ...]`) in
/// every lambda that holds a `backend::completion_handler`: see the warning on
/// `backend::completion_handler`.
struct move_only {
    move_only() = default;
    move_only(move_only&&) = default;
    move_only& operator=(move_only&&) = default;
    move_only(const move_only&) = delete;
    move_only& operator=(const move_only&) = delete;
};

/// A broker connection, driven by one broadcast. The broadcast owns it and makes every
/// call; the app never calls a backend itself.
///
/// ## Calls
/// The broadcast calls every member function on the backend's executor (a strand,
/// `executor()`), never concurrently. It calls `async_connect` before anything else
/// and again only after `async_disconnect`. One subscription per channel: it calls
/// `async_subscribe` once for a channel and `async_unsubscribe` when its last local
/// subscriber leaves; the backend keeps no local subscriber state. Per channel, at most
/// one `async_subscribe` or `async_unsubscribe` is in flight: the broadcast waits for one
/// to complete before the next call for that channel, so they alternate (subscribe,
/// unsubscribe, subscribe, ...) and a backend never orders them itself. A failed
/// subscribe is not retried by the broadcast. After `async_disconnect` these rules
/// start again from scratch (late completions of the previous connection are ignored).
///
/// ## Completions
/// Each handler must be invoked exactly once, through its associated executor (it may
/// differ from `executor()`: a publish handler carries the app's), and never from inside
/// the call that received it. `complete()` does all of that: use it. A handler is
/// invoked with one of:
/// - no error: done (`async_subscribe`: the broker confirmed the subscription;
///   `async_publish`: the broker accepted the message);
/// - `boost::asio::error::operation_aborted`: ended by `async_disconnect`, by the
///   backend's destruction, or cancelled (see below);
/// - a `broadcaster::error` (e.g. `error::invalid_channel`, `error::payload_too_large`,
///   refused before anything was sent) or a transport error from the broker connection.
///
/// ## Disconnect and destruction
/// - `async_disconnect` completes every operation still pending with
///   `operation_aborted` (a connect in progress included), before its own handler.
/// - `async_disconnect` completes only once the backend's sockets are closed and its
///   background work has ended (timers, reconnect loops, threads): after it, the backend
///   holds no connection and calls the sink no more, so the broadcast can tell the app
///   that everything has stopped.
/// - The destructor completes every pending handler with `operation_aborted` (or lets
///   it be destroyed uncalled when the io_context itself is being destroyed) and frees
///   everything the backend owns, at the latest when the io_context is destroyed. The
///   handlers hold no strong reference to the broadcast, so keeping them never keeps
///   the broadcast alive; but never keep the backend's own state alive through a
///   reference cycle.
///
/// ## Cancellation
/// A handler may carry an associated cancellation slot
/// (`boost::asio::get_associated_cancellation_slot`).
/// - `async_publish`: a backend may let a publish still queued in the backend (not yet
///   handed to the broker) be cancelled, for every cancellation type: it installs a
///   handler on the slot (`slot.assign(...)`), which then completes the publish with
///   `operation_aborted` and never sends it. The slot handler runs on the thread that
///   emits the cancellation: it must only post to `executor()`, and the work it posts
///   must find the publish by an id (it may have completed meanwhile) and reach the
///   backend's state through a `std::weak_ptr` (the backend may be gone).
/// - A backend must clear a slot handler it installed before completing the operation
///   (`complete()` clears the slot on the handler's executor, right before the call).
/// - Other operations: a backend may ignore their slots.
///
/// ## Threads
/// Member functions run on `executor()`; the destructor on any thread (possibly while
/// the io_context is being destroyed). Work the backend runs elsewhere (its own
/// threads, another strand) reaches the sink through `weak_sink()`, posted to
/// `executor()`, and the backend's state through a `std::weak_ptr`: it must never touch
/// the backend object, which may be destroyed at any time between calls.
///
/// ## Supervision
/// Network backends supervise their connection: they reconnect after a loss (with
/// backoff), restore every subscription, and report both through `sink().state_changed`.
class BROADCASTER_EXPORT backend {
  public:
    /// The completion handler type of every backend operation.
    ///
    /// @warning Boost 1.81's `any_completion_handler` must never be copy- or
    /// move-ASSIGNED: its converting constructor accepts an lvalue of itself, so it
    /// looks copyable to Asio, and a copy (its move assignment copies) recurses until the
    /// stack overflows. Move-construct it, `swap` it, or keep it in a node container
    /// (`std::list`, `std::map`): containers that shift elements (erase from a
    /// `std::vector` or `std::deque` middle, `std::remove_if`, sorting) and `std::exchange`
    /// assign. Capture a `move_only` beside it in every lambda that holds one.
    using completion_handler = boost::asio::any_completion_handler<void(boost::system::error_code)>;

    /// Destroyed by the broadcast, on any thread. See "Disconnect and destruction".
    virtual ~backend() = default;

    /// Connects to the broker. Completes with an error (e.g. `error::unreachable`) if
    /// it cannot within `broadcast_options::connect_timeout`.
    virtual void async_connect(completion_handler handler) = 0;
    /// Closes the connection; every subscription is dropped and every pending operation
    /// completes with `operation_aborted`. Completes once sockets and background work
    /// are gone. Never fails for a backend that is not connected.
    virtual void async_disconnect(completion_handler handler) = 0;
    /// Subscribes to `channel`; completes when the broker has confirmed it: every event
    /// published on `channel` after that must be delivered.
    virtual void async_subscribe(std::string channel, completion_handler handler) = 0;
    /// Unsubscribes from `channel`.
    virtual void async_unsubscribe(std::string channel, completion_handler handler) = 0;
    /// Publishes `message` on `channel`; completes when the broker accepted it.
    /// Per channel, messages published one after the other (each call made before the
    /// previous one completed, too) reach subscribers in that order.
    virtual void async_publish(std::string channel, std::string message,
                               completion_handler handler) = 0;

    // ---- Patterns (optional; see subscribe_options::pattern) -------------------------

    /// Subscribes to every channel that matches `pattern`, in the backend's pattern
    /// syntax; completes when the broker has confirmed it. Events go to
    /// `sink().deliver_matched(pattern, ev)`. The rules for channels apply to patterns,
    /// apart from them: one subscription per pattern, and per pattern at most one
    /// subscribe or unsubscribe in flight. An invalid pattern: `error::invalid_channel`.
    /// The default refuses: `error::patterns_not_supported`.
    virtual void async_subscribe_pattern(std::string pattern, completion_handler handler);
    /// Ends the subscription to `pattern`. The default completes at once.
    virtual void async_unsubscribe_pattern(std::string pattern, completion_handler handler);

    // ---- History (optional; see docs/history.md) ------------------------------------

    /// The completion handler of `async_history`: the events, oldest first, each with
    /// its position.
    using history_handler =
        boost::asio::any_completion_handler<void(boost::system::error_code, std::vector<event>)>;

    /// The events of `channel` the broker keeps that `query` selects, oldest first.
    /// Errors: `error::history_gap` when `query.after` is set and events after it are
    /// no longer kept, `error::invalid_position` for an `after` this backend cannot
    /// have given out. The default keeps no history: `error::history_not_supported`.
    /// A backend that keeps history gives every delivered event its position and, after
    /// a reconnect, delivers each subscribed channel from the last position it
    /// delivered (calling `sink().history_gap` when that is no longer possible).
    virtual void async_history(std::string channel, history_query query, history_handler handler);

    /// Whether position `a` comes before `b` in one channel. The default compares
    /// positions of the form `N` or `N-M` (decimal numbers, as sequence numbers,
    /// offsets and Redis stream IDs are) numerically; override it for other forms.
    /// Called on the broadcast's strand.
    virtual bool position_before(std::string_view a, std::string_view b) const;

    /// `complete(handler, ec)` (below) with `fallback` as the executor to queue on and
    /// the executor for a handler without one of its own: for backend state kept apart
    /// from the backend object (held by a `std::shared_ptr`, reached through a
    /// `std::weak_ptr`) with a copy of `executor()`. Thread-safe.
    static void complete(completion_handler handler, const boost::asio::any_io_executor& fallback,
                         boost::system::error_code ec) {
        if (!handler) {
            return;
        }
        const auto target = boost::asio::get_associated_executor(handler, fallback);
        boost::asio::post(
            fallback,
            boost::asio::bind_executor(
                target, [once = move_only{}, handler = std::move(handler), ec]() mutable {
                    // On the handler's executor, where the app emits cancellation.
                    if (auto slot = boost::asio::get_associated_cancellation_slot(handler);
                        slot.is_connected()) {
                        slot.clear();
                    }
                    std::move(handler)(ec);
                }));
    }

  protected:
    /// The strand all calls are made on; run the backend's own work on it.
    const boost::asio::any_io_executor& executor() const noexcept { return executor_; }

    /// The sink; valid for the backend's whole life. Call it on `executor()` only.
    backend_sink& sink() const noexcept { return *sink_ref_; }

    /// A weak reference to the sink, for work that may outlive the backend (e.g. a
    /// delivery posted from another thread): lock it on `executor()` before use.
    const std::weak_ptr<backend_sink>& weak_sink() const noexcept { return sink_; }

    /// Completes an operation with `ec`, as the rules above require: posted (never
    /// inline), run on the handler's associated executor (`executor()` if none), the
    /// handler's cancellation slot cleared right before the call. Does nothing for an
    /// empty handler. Thread-safe.
    void complete(completion_handler handler, boost::system::error_code ec) const {
        complete(std::move(handler), executor(), ec);
    }

  private:
    friend class detail::backend_access;

    // Called once by the broadcast before any other call.
    void attach(boost::asio::any_io_executor executor, std::weak_ptr<backend_sink> sink) {
        executor_ = std::move(executor);
        sink_ = std::move(sink);
        sink_ref_ = sink_.lock().get();
    }

    boost::asio::any_io_executor executor_;
    std::weak_ptr<backend_sink> sink_;
    backend_sink* sink_ref_ = nullptr;
};

/// Makes a backend for a URL. May throw `boost::system::system_error` (e.g.
/// `error::invalid_url` for a URL it cannot use); the message must not contain
/// `config.url`, only `config.redacted_url`. Called on the thread constructing the
/// broadcast: it must not block on the network (connect in `async_connect`).
using backend_factory = std::function<std::unique_ptr<backend>(const backend_config& config)>;

/// Registers `factory` for URLs whose scheme is `scheme` (case-insensitive), replacing
/// any backend registered for it before, built-in ones included. Thread-safe; affects
/// broadcasts constructed afterwards.
BROADCASTER_EXPORT void register_backend(std::string scheme, backend_factory factory);

}  // namespace broadcaster
