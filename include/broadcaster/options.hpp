#pragma once

/// @file
/// Options of broadcasts and subscribers, with their defaults.

#include <broadcaster/export.hpp>

#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace broadcaster {

/// What a subscriber does with a new event when its queue is full.
/// Every dropped event is counted (`subscriber::dropped()`, `broadcast_stats::dropped`).
enum class overflow_policy {
    /// Discard the oldest queued event to make room: the subscriber always sees the
    /// most recent events. The default.
    drop_oldest,
    /// Discard the new event: the subscriber keeps what it has queued.
    drop_newest,
    /// Close the subscriber: it receives what is queued, then `error::subscriber_overflow`.
    close,
};

/// Per-subscriber settings, chosen at subscribe time.
struct subscribe_options {
    /// Maximum number of queued events. Default 1024; values below 1 count as 1.
    std::size_t capacity = 1024;
    /// Maximum total size of the queued messages, in bytes; 0 (the default) means no
    /// limit besides `capacity`. Message bodies are shared by all subscribers of an
    /// event, so this bounds what one slow subscriber keeps alive. A message larger than
    /// this never fits: `drop_oldest` and `drop_newest` drop it (counted, the queue
    /// kept), `close` ends the subscriber as for any overflow.
    std::size_t max_bytes = 0;
    /// What happens to a new event when the queue is full. Default `drop_oldest`.
    overflow_policy policy = overflow_policy::drop_oldest;
    /// Start with everything after this position (an `event::position()` of the
    /// channel), then continue live, with no gap and no duplicate at the seam. Needs a
    /// backend that keeps history and exactly one channel. The subscribe fails with
    /// `error::history_gap` if the broker no longer keeps everything after it,
    /// `error::history_not_supported` without history, `error::invalid_position` for a
    /// position the backend cannot have given out. Default: none (live only).
    std::optional<std::string> since;
    /// Start with the `last` most recent events of each channel, then continue live,
    /// with no gap and no duplicate at the seam. Needs a backend that keeps history
    /// (else `error::history_not_supported`). Default 0: live only.
    /// With `since`, a bound instead: everything after the position if that is at most
    /// `last` events, else `error::history_gap` (so that a client far behind, or a
    /// position from long ago, costs at most `last + 1` events read from the broker).
    /// History counts against `capacity` like live events: make `capacity` at least
    /// `last` (plus what arrives before the first receive) to keep all of it.
    std::size_t last = 0;
    /// The names given to subscribe are patterns in the backend's syntax (`nats://`:
    /// `*` matches one token, `>` the rest, as in `orders.*.created` or `orders.>`):
    /// the subscriber receives the events of every channel that matches, each with its
    /// own `event::channel()`. An event of a channel that matches several of the
    /// subscriber's patterns, or one of them and a channel it also subscribed to, is
    /// received once per subscription that matches it (the broker delivers it so).
    /// Backends without patterns refuse with `error::patterns_not_supported`; invalid
    /// patterns are `error::invalid_channel`. Not together with `since` or `last`
    /// (`boost::system::errc::invalid_argument`). Default false.
    bool pattern = false;

    subscribe_options() = default;
    subscribe_options(std::size_t capacity, overflow_policy policy = overflow_policy::drop_oldest,
                      std::size_t max_bytes = 0)
        : capacity(capacity), max_bytes(max_bytes), policy(policy) {}
};

/// Per-broadcast settings. Backends read them as defaults; a URL query option of the
/// same meaning (documented per backend) overrides them.
struct broadcast_options {
    /// How long connecting to the broker may take. Default 10 s.
    std::chrono::milliseconds connect_timeout{10'000};
    /// How long a publish may wait for a connection (while reconnecting) and for the
    /// broker's acknowledgement before it fails. Default 5 s.
    std::chrono::milliseconds publish_timeout{5'000};
    /// First delay before reconnecting after a lost connection. Default 100 ms; less
    /// than 10 ms (0 included) counts as 10 ms, so there is always a delay.
    std::chrono::milliseconds reconnect_backoff_min{100};
    /// Largest delay between reconnect attempts (exponential backoff with jitter). Default 5 s.
    std::chrono::milliseconds reconnect_backoff_max{5'000};
};

/// Connection state of a broadcast, as reported to `broadcast::on_state_change`.
enum class connection_state {
    /// Not connected: before `async_connect` or after `async_disconnect`.
    disconnected,
    /// The first connection attempt is in progress.
    connecting,
    /// Connected; every active subscription is in place at the broker.
    connected,
    /// The connection was lost; the backend is reconnecting and will restore every
    /// subscription. Events published meanwhile may be lost (backend-specific).
    reconnecting,
};

/// The name of a state (`"connected"`, ...), for logs.
BROADCASTER_EXPORT std::string_view to_string(connection_state state) noexcept;

}  // namespace broadcaster
