#pragma once

// What redact_url knows about option names, for the backends' own error messages.

#include <string_view>

namespace broadcaster::detail {

// True if the value of the URL query option `name` (as written in the URL, e.g.
// "kafka.linger.ms"; percent-decoded and compared case-insensitively) is never a
// secret, so that it may appear in logs and errors. False for anything not on the
// allow-list, secret or not.
bool harmless_option(std::string_view name);

}  // namespace broadcaster::detail
