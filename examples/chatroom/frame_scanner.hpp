#pragma once

// Follows WebSocket frame boundaries in a byte stream without buffering payloads, for
// the two checks the chat server makes below Beast (see write_behind_stream.hpp):
//
// - `outgoing_frames`: in what the server writes, where its close frame ends. Nothing
//   may follow it on the wire (RFC 6455 §5.5.1), whoever wrote it (the chat writer,
//   Beast's close reply, Beast failing the connection).
// - `incoming_frames`: in what a client sends, two violations Beast 1.81 lets through:
//   a close code of 5000 or more (§7.4.2: only 1000-4999 exist) and a 64-bit payload
//   length with its most significant bit set (§5.2). The frame is marked with a
//   reserved bit, so Beast itself fails the connection with 1002 (protocol error), as
//   for any other malformed frame.

#include <cstddef>
#include <cstdint>

namespace chat {

// Total header size given its first two bytes.
inline std::size_t frame_header_size(unsigned char second_byte) noexcept {
    const auto len7 = second_byte & 0x7f;
    const std::size_t extended = len7 == 126 ? 2 : len7 == 127 ? 8 : 0;
    return 2 + extended + ((second_byte & 0x80) ? 4 : 0);
}

// Payload length of a complete header.
inline std::uint64_t frame_payload_size(const unsigned char* header) noexcept {
    const auto len7 = header[1] & 0x7f;
    const int extended = len7 == 126 ? 2 : len7 == 127 ? 8 : 0;
    if (extended == 0) {
        return len7;
    }
    std::uint64_t size = 0;
    for (int i = 0; i < extended; ++i) {
        size = (size << 8) | header[2 + i];
    }
    return size;
}

inline constexpr unsigned char close_opcode = 0x8;

class outgoing_frames {
  public:
    // How many of the `n` bytes at `data` come before the end of the close frame (all
    // of them while none was written).
    std::size_t accept(const unsigned char* data, std::size_t n) noexcept {
        std::size_t i = 0;
        while (i < n && !close_done_) {
            if (payload_left_ > 0) {
                const auto take = static_cast<std::size_t>(
                    payload_left_ < n - i ? payload_left_ : static_cast<std::uint64_t>(n - i));
                payload_left_ -= take;
                i += take;
                close_done_ = close_started_ && payload_left_ == 0;
                continue;
            }
            header_[header_size_++] = data[i++];
            if (header_size_ < 2 || header_size_ < frame_header_size(header_[1])) {
                continue;
            }
            payload_left_ = frame_payload_size(header_);
            header_size_ = 0;
            close_started_ = close_started_ || (header_[0] & 0x0f) == close_opcode;
            close_done_ = close_started_ && payload_left_ == 0;
        }
        return i;
    }

    // The server's close frame has begun: no data frame may be written any more.
    bool close_started() const noexcept { return close_started_; }

  private:
    unsigned char header_[14] = {};
    std::size_t header_size_ = 0;
    std::uint64_t payload_left_ = 0;
    bool close_started_ = false;
    bool close_done_ = false;
};

class incoming_frames {
  public:
    // Bytes a frame header may need before it can be checked: the longest header and
    // a close frame's status code.
    static constexpr std::size_t max_held = 14 + 2;

    // Scans `n` received bytes at `data` (starting where the previous call's result
    // ended; the caller keeps the rest and calls again with more). Returns how many
    // may be handed on: everything up to a header that is not complete yet. Rewrites
    // the first byte of a violating frame.
    std::size_t scan(unsigned char* data, std::size_t n) noexcept {
        std::size_t i = 0;
        while (i < n) {
            if (pass_through_) {
                return n;
            }
            if (payload_left_ > 0) {
                const auto take = static_cast<std::size_t>(
                    payload_left_ < n - i ? payload_left_ : static_cast<std::uint64_t>(n - i));
                payload_left_ -= take;
                i += take;
                continue;
            }
            unsigned char* header = data + i;
            const auto available = n - i;
            if (available < 2 || available < frame_header_size(header[1])) {
                return i;
            }
            const auto header_size = frame_header_size(header[1]);
            const auto size = frame_payload_size(header);
            bool violation = (header[1] & 0x7f) == 127 && (header[2] & 0x80) != 0;
            if ((header[0] & 0x0f) == close_opcode && size >= 2) {
                if (available < header_size + 2) {
                    return i;
                }
                const bool masked = (header[1] & 0x80) != 0;
                const unsigned char* key = header + header_size - 4;
                const unsigned hi = header[header_size] ^ (masked ? key[0] : 0);
                const unsigned lo = header[header_size + 1] ^ (masked ? key[1] : 0);
                violation = violation || ((hi << 8) | lo) >= 5000;
            }
            if (violation) {
                header[0] |= 0x20;  // RSV2: Beast answers 1002 and fails the connection
                pass_through_ = true;
                return n;
            }
            payload_left_ = size;
            i += header_size;
        }
        return i;
    }

    // Payload bytes of the current frame not received yet: they can be read straight
    // into the caller's buffer, unscanned.
    std::uint64_t payload_left() const noexcept {
        return pass_through_ ? UINT64_MAX : payload_left_;
    }
    // Consumes `n` payload bytes read straight into the caller's buffer.
    void skip(std::size_t n) noexcept {
        if (!pass_through_) {
            payload_left_ -= n;
        }
    }

  private:
    std::uint64_t payload_left_ = 0;
    bool pass_through_ = false;  // after a violation: Beast is failing the connection
};

}  // namespace chat
