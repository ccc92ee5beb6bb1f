#pragma once

/// @file
/// URL helpers shared by the core and the backends.

#include <broadcaster/export.hpp>

#include <boost/system/result.hpp>

#include <string>
#include <string_view>

namespace broadcaster {

/// Returns `url` with every secret replaced by `***`, for log lines and error messages:
/// - the whole user information (`redis://***@host`), which ends at the last `@` of
///   the URL, so a password holding a raw `/`, `?`, `#` or `@` is masked whole (an `@`
///   in an option value makes it mask more, never less);
/// - the value of every query option not on an allow-list of harmless ones (timeouts,
///   reconnect delays, `client_name`, `sslmode`, `topic_prefix`, librdkafka tuning
///   settings such as `kafka.linger.ms`; names compared percent-decoded and
///   case-insensitively): `?kafka.sasl.password=***`; the name too when it is no
///   option any backend knows (`?***`), and a fragment (`#***`).
/// Control characters are escaped (`%0A`), so the result is one line. Works on any
/// string, URL or not. Thread-safe.
BROADCASTER_EXPORT std::string redact_url(std::string_view url);

/// Returns the lower-cased scheme of `url` (`"redis"` for `redis://host`).
/// Fails with `error::invalid_url` when `url` is not a URI (RFC 3986) with a scheme.
/// Thread-safe.
BROADCASTER_EXPORT boost::system::result<std::string> url_scheme(std::string_view url);

}  // namespace broadcaster
