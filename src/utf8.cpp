#include "utf8.hpp"

#include <cstddef>

namespace broadcaster {

namespace {

// The length of the well-formed sequence that starts at text[i], or 0. Then `subpart`
// holds the length of the longest prefix of one (at least 1): the bytes one U+FFFD
// replaces.
std::size_t sequence_at(std::string_view text, std::size_t i, std::size_t& subpart) noexcept {
    const auto c = static_cast<unsigned char>(text[i]);
    subpart = 1;
    if (c < 0x80) {
        return 1;
    }
    std::size_t extra = 0;
    unsigned char low = 0x80;
    unsigned char high = 0xbf;
    if (c >= 0xc2 && c <= 0xdf) {
        extra = 1;
    } else if (c >= 0xe0 && c <= 0xef) {
        extra = 2;
        low = c == 0xe0 ? 0xa0 : 0x80;
        high = c == 0xed ? 0x9f : 0xbf;
    } else if (c >= 0xf0 && c <= 0xf4) {
        extra = 3;
        low = c == 0xf0 ? 0x90 : 0x80;
        high = c == 0xf4 ? 0x8f : 0xbf;
    } else {
        return 0;
    }
    for (std::size_t k = 1; k <= extra; ++k) {
        if (i + k >= text.size()) {
            return 0;
        }
        const auto next = static_cast<unsigned char>(text[i + k]);
        if (k == 1 ? (next < low || next > high) : (next & 0xc0) != 0x80) {
            return 0;
        }
        subpart = k + 1;
    }
    return extra + 1;
}

}  // namespace

bool is_valid_utf8(std::string_view text) noexcept {
    std::size_t subpart = 0;
    for (std::size_t i = 0; i < text.size();) {
        const auto n = sequence_at(text, i, subpart);
        if (n == 0) {
            return false;
        }
        i += n;
    }
    return true;
}

std::string to_valid_utf8(std::string_view text) {
    if (is_valid_utf8(text)) {
        return std::string(text);
    }
    std::string out;
    out.reserve(text.size() + 8);
    std::size_t subpart = 0;
    for (std::size_t i = 0; i < text.size();) {
        if (const auto n = sequence_at(text, i, subpart); n > 0) {
            out.append(text.substr(i, n));
            i += n;
        } else {
            out += "\xef\xbf\xbd";  // U+FFFD
            i += subpart;
        }
    }
    return out;
}

}  // namespace broadcaster
