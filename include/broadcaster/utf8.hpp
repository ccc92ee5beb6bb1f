#pragma once

/// @file
/// UTF-8 checks for apps that hand messages on as text (WebSocket text frames, JSON):
/// a message is any bytes, and another publisher may send bytes that are not UTF-8.

#include <broadcaster/export.hpp>

#include <string>
#include <string_view>

namespace broadcaster {

/// Whether `text` is well-formed UTF-8 (RFC 3629: no overlong forms, no surrogates,
/// nothing above U+10FFFF).
BROADCASTER_EXPORT bool is_valid_utf8(std::string_view text) noexcept;

/// `text` with each ill-formed sequence replaced by U+FFFD, one per maximal subpart
/// (as the WHATWG decoder and Unicode's "best practice" do); `text` itself when it is
/// well-formed.
BROADCASTER_EXPORT std::string to_valid_utf8(std::string_view text);

}  // namespace broadcaster
