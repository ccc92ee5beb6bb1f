#pragma once

/// @file
/// The `broadcaster` error category. Every failure the library reports is a
/// `boost::system::error_code` in this category (or an Asio/system code for
/// transport failures), passed to completion handlers the Asio way.

#include <broadcaster/export.hpp>

#include <boost/system/error_code.hpp>
#include <boost/system/system_error.hpp>

#include <string>
#include <type_traits>

namespace broadcaster {

/// Errors reported by broadcasts, subscribers and backends. The values are stable:
/// new codes are appended. docs/errors.md lists which operation completes with which
/// code on which backend, and what an app should do about it; compare a code with a
/// `broadcaster::condition` to branch on its group (retry, fix the configuration...).
enum class error {
    /// The URL could not be parsed. Condition: configuration.
    invalid_url = 1,
    /// No backend is registered for the URL's scheme. Condition: configuration.
    unknown_scheme,
    /// The scheme is known, but its backend was switched off when the library was built.
    /// Condition: configuration.
    backend_not_built,
    /// The operation needs a connected broadcast: it was never connected, or the app
    /// disconnected it. Call `async_connect` first. Condition: usage.
    not_connected,
    /// The message is larger than the backend can carry. Condition: invalid_request.
    payload_too_large,
    /// The channel name cannot be used with this backend (empty, too long, bad
    /// characters). Condition: invalid_request.
    invalid_channel,
    /// The subscriber's queue overflowed and its policy is `overflow_policy::close`.
    /// Condition: subscription_ended.
    subscriber_overflow,
    /// The broadcast was disconnected or destroyed: the subscriber will receive nothing
    /// more. Condition: subscription_ended.
    end_of_stream,
    /// A receive was started while another receive on the same subscriber was pending.
    /// Condition: usage.
    receive_in_progress,
    /// The broker refused the credentials. Conditions: configuration, refused_by_broker.
    authentication_failed,
    /// The broker answered something the backend did not expect (or a URL names a
    /// server that does not speak the backend's protocol). In no condition: report it.
    protocol_error,
    /// The broker reported an error for the operation. Condition: refused_by_broker.
    broker_error,
    /// The operation did not complete within its configured timeout while the broker
    /// was connected. Condition: transient.
    timeout,
    /// The callback of a callback subscription threw: the subscription ended.
    /// Condition: subscription_ended.
    callback_failed,
    /// Connecting failed: the broker's address did not resolve, refused the connection,
    /// or did not answer within `connect_timeout_ms`. Condition: transient.
    unreachable,
    /// The connection to the broker was lost while the operation was in flight: a
    /// publish may or may not have reached the broker (retrying may duplicate it); a
    /// subscribe did not take effect. Also what a subscribe made while the connection
    /// is down completes with. Condition: transient.
    connection_lost,
    /// The operation waited for the lost connection to come back longer than its
    /// timeout (`publish_timeout_ms`): nothing was sent. Condition: transient.
    reconnect_timeout,
    /// No broker of the cluster answers, or none leads the channel's partition (Kafka):
    /// nothing was delivered. Condition: transient.
    cluster_unavailable,
    /// The backend keeps no history: `subscribe_options::since`, `subscribe_options::last`
    /// and `broadcast::async_history` need one that does (see docs/history.md). Condition:
    /// configuration.
    history_not_supported,
    /// Events of the channel were lost for good (trimmed from the history, or the broker
    /// lost its data) between the position a subscriber had and what the broker still
    /// keeps: a subscribe with `since` fails with it, and a subscriber that was
    /// recovering after a reconnect ends with it once it has received everything before
    /// the gap. Condition: subscription_ended.
    history_gap,
    /// A position (`subscribe_options::since`) this backend cannot have given out.
    /// Condition: invalid_request.
    invalid_position,
    /// The broker refused to subscribe the channel again after a reconnect (e.g. Redis
    /// `-NOPERM` after an ACL change): the subscriber receives nothing more. Conditions:
    /// subscription_ended, refused_by_broker.
    subscription_refused,
    /// The backend cannot subscribe to patterns (`subscribe_options::pattern`); see
    /// docs/operations.md for the backends that can. Condition: configuration.
    patterns_not_supported,
    /// The backend's client library (libpq, librdkafka, nats.c), loaded when the first
    /// broadcast of its scheme is made, is not installed or is too old; the message names
    /// the library and the loader's reason. Condition: configuration.
    backend_unavailable,
};

/// Groups of codes an app can branch on: `if (ec == condition::transient) retry();`.
/// A code may belong to several (`authentication_failed` is configuration and
/// refused_by_broker); docs/errors.md has the table. Asio and system codes that reach
/// the app (a connection-state reason such as `asio::error::eof`, a TLS handshake
/// error) are classified too.
enum class condition {
    /// Retrying later may succeed: the broker is unreachable, the connection was lost
    /// or is being re-established, a timeout passed. Includes Asio's connection_refused,
    /// connection_reset, eof, timed_out, host_unreachable, broken_pipe and the like.
    transient = 1,
    /// Retrying will not help until the URL, credentials, options or build change:
    /// invalid_url, unknown_scheme, backend_not_built, authentication_failed, a name that
    /// does not resolve (Asio's host_not_found), a TLS handshake failure.
    configuration,
    /// The broker answered and refused: authentication_failed, broker_error.
    refused_by_broker,
    /// This channel or message cannot be carried: payload_too_large, invalid_channel.
    /// Another channel or message may work.
    invalid_request,
    /// The app called the API in a way that cannot work now: not_connected (connect
    /// first), receive_in_progress (one receive at a time per subscriber).
    usage,
    /// The subscriber will receive nothing more: end_of_stream, subscriber_overflow,
    /// callback_failed. Subscribe again to go on.
    subscription_ended,
};

/// The category of `broadcaster::error` codes; its name is `"broadcaster"`. Each code's
/// `default_error_condition` is its first condition above (or itself if it has none);
/// `equivalent` matches every condition it belongs to. Thread-safe.
BROADCASTER_EXPORT const boost::system::error_category& error_category() noexcept;

/// Makes an error_code from a `broadcaster::error` (found by argument-dependent lookup).
inline boost::system::error_code make_error_code(error e) noexcept {
    return {static_cast<int>(e), error_category()};
}

/// The category of `broadcaster::condition` values; its name is `"broadcaster.condition"`.
BROADCASTER_EXPORT const boost::system::error_category& condition_category() noexcept;

/// Makes an error_condition from a `broadcaster::condition` (found by argument-dependent
/// lookup), so that `ec == condition::transient` compiles.
inline boost::system::error_condition make_error_condition(condition c) noexcept {
    return {static_cast<int>(c), condition_category()};
}

/// Throws `boost::system::system_error` carrying `ec` and `what` when `ec` is an error.
BROADCASTER_EXPORT void throw_if_error(const boost::system::error_code& ec,
                                       const std::string& what);

}  // namespace broadcaster

template <>
struct boost::system::is_error_code_enum<broadcaster::error> : std::true_type {};

template <>
struct boost::system::is_error_condition_enum<broadcaster::condition> : std::true_type {};
