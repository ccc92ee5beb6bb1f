// The CLI's own UTF-8 check: it uses only the library's public API, so it cannot share
// the library's internal validator (hidden in a shared build).
#include "commands.hpp"

#include <cstddef>

namespace cli {

// RFC 3629 well-formedness (table 3-7 of the Unicode standard): no overlong forms, no
// surrogates (U+D800..DFFF), nothing above U+10FFFF, no truncated sequence.
bool is_valid_utf8(std::string_view text) {
    std::size_t i = 0;
    while (i < text.size()) {
        const auto lead = static_cast<unsigned char>(text[i]);
        if (lead < 0x80) {
            ++i;
            continue;
        }
        std::size_t extra = 0;
        // Allowed range of the second byte; only the lead bytes below narrow it.
        unsigned char low = 0x80;
        unsigned char high = 0xbf;
        if (lead >= 0xc2 && lead <= 0xdf) {
            extra = 1;  // 0xc0/0xc1 would be overlong ASCII
        } else if (lead >= 0xe0 && lead <= 0xef) {
            extra = 2;
            low = lead == 0xe0 ? 0xa0 : 0x80;   // overlong below U+0800
            high = lead == 0xed ? 0x9f : 0xbf;  // surrogates
        } else if (lead >= 0xf0 && lead <= 0xf4) {
            extra = 3;
            low = lead == 0xf0 ? 0x90 : 0x80;   // overlong below U+10000
            high = lead == 0xf4 ? 0x8f : 0xbf;  // above U+10FFFF
        } else {
            return false;  // continuation byte, 0xc0, 0xc1 or 0xf5..0xff
        }
        if (text.size() - i <= extra) {
            return false;
        }
        const auto second = static_cast<unsigned char>(text[i + 1]);
        if (second < low || second > high) {
            return false;
        }
        for (std::size_t k = 2; k <= extra; ++k) {
            if ((static_cast<unsigned char>(text[i + k]) & 0xc0) != 0x80) {
                return false;
            }
        }
        i += extra + 1;
    }
    return true;
}

}  // namespace cli
