#pragma once

/// @file
/// URL helpers shared by the core and the backends.

#include <boost/system/result.hpp>

#include <string>
#include <string_view>

namespace broadcaster {

/// Returns `url` with every secret replaced by `***`: the password of the user
/// information (`redis://user:***@host`) and the value of every query parameter whose
/// name contains `password` (`?sasl.password=***`). Works on malformed URLs too, so it
/// is safe to use in any log line or error message. Thread-safe.
std::string redact_url(std::string_view url);

/// Returns the lower-cased scheme of `url` (`"redis"` for `redis://host`).
/// Fails with `error::invalid_url` when `url` is not a URI (RFC 3986) with a scheme.
/// Thread-safe.
boost::system::result<std::string> url_scheme(std::string_view url);

}  // namespace broadcaster
