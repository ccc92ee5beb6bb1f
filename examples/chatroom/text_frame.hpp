#pragma once

// The header of a WebSocket text frame as the server sends it (RFC 6455 §5.2): one
// whole message, unmasked. The chat writer frames room messages itself: building them
// through Beast's write was 28% of the server's instructions per delivery at a steady
// rate, for these few bytes. Beast still does everything else: the handshake, reading,
// control frames and the close.

#include <array>
#include <cstddef>
#include <cstdint>

namespace chat {

struct text_frame_header {
    explicit text_frame_header(std::uint64_t payload_size) noexcept {
        bytes[0] = 0x81;  // FIN, text
        if (payload_size < 126) {
            bytes[1] = static_cast<unsigned char>(payload_size);
            size = 2;
            return;
        }
        const int extended = payload_size <= 0xffff ? 2 : 8;
        bytes[1] = extended == 2 ? 126 : 127;
        for (int i = 0; i < extended; ++i) {
            bytes[2 + i] = static_cast<unsigned char>(payload_size >> (8 * (extended - 1 - i)));
        }
        size = 2 + static_cast<std::size_t>(extended);
    }

    std::array<unsigned char, 10> bytes{};
    std::size_t size = 0;
};

}  // namespace chat
