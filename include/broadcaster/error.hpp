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

/// Errors reported by broadcasts, subscribers and backends.
enum class error {
    /// The URL could not be parsed.
    invalid_url = 1,
    /// No backend is registered for the URL's scheme.
    unknown_scheme,
    /// The scheme is known, but its backend was switched off when the library was built.
    backend_not_built,
    /// The operation needs a connected broadcast (call `async_connect` first), or the
    /// broker could not be reached within the configured timeout.
    not_connected,
    /// The message is larger than the backend can carry.
    payload_too_large,
    /// The channel name cannot be used with this backend (empty, too long, bad characters).
    invalid_channel,
    /// The subscriber's queue overflowed and its policy is `overflow_policy::close`.
    subscriber_overflow,
    /// The broadcast was disconnected or destroyed: the subscriber will receive nothing more.
    end_of_stream,
    /// A receive was started while another receive on the same subscriber was pending.
    receive_in_progress,
    /// The broker refused the credentials.
    authentication_failed,
    /// The broker answered something the backend did not expect.
    protocol_error,
    /// The broker reported an error for the operation.
    broker_error,
    /// The operation did not complete within its configured timeout.
    timeout,
    /// The callback of a callback subscription threw: the subscription ended.
    callback_failed,
};

/// The category of `broadcaster::error` codes; its name is `"broadcaster"`.
BROADCASTER_EXPORT const boost::system::error_category& error_category() noexcept;

/// Makes an error_code from a `broadcaster::error` (found by argument-dependent lookup).
inline boost::system::error_code make_error_code(error e) noexcept {
    return {static_cast<int>(e), error_category()};
}

/// Throws `boost::system::system_error` carrying `ec` and `what` when `ec` is an error.
BROADCASTER_EXPORT void throw_if_error(const boost::system::error_code& ec,
                                       const std::string& what);

}  // namespace broadcaster

template <>
struct boost::system::is_error_code_enum<broadcaster::error> : std::true_type {};
