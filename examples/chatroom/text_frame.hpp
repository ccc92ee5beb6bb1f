#pragma once

// The header of a WebSocket frame as the server sends it (RFC 6455 §5.2): one whole
// message or control frame, unmasked, its length in the fewest bytes. The chat frames
// everything it sends itself: building room messages through Beast's write was 28% of
// the server's instructions per delivery at a steady rate, for these few bytes.

#include <array>
#include <cstddef>
#include <cstdint>

namespace chat {

inline constexpr unsigned char text_opcode = 0x1;
inline constexpr unsigned char close_opcode = 0x8;
inline constexpr unsigned char ping_opcode = 0x9;
inline constexpr unsigned char pong_opcode = 0xa;

struct frame_header {
    frame_header(unsigned char opcode, std::uint64_t payload_size) noexcept {
        bytes[0] = static_cast<unsigned char>(0x80 | opcode);  // FIN
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

struct text_frame_header : frame_header {
    explicit text_frame_header(std::uint64_t payload_size) noexcept
        : frame_header(text_opcode, payload_size) {}
};

}  // namespace chat
