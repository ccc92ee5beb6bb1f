#pragma once

// The server's side of reading WebSocket frames (RFC 6455 §5), without I/O: fed the
// bytes a client sent, it unmasks payloads straight into the message being assembled
// and says what happened, one event at a time. Between calls it holds at most one
// partial frame header and a control frame's payload (at most 125 bytes), never the
// input, so a client waiting for readability holds no read buffer.
//
// The room carries text: a binary message fails the connection with 1003 at its first
// frame. Extensions are never negotiated, so every reserved bit fails with 1002.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace chat {

// Close codes the server sends (RFC 6455 §7.4.1).
enum class close_code : std::uint16_t {
    normal = 1000,
    going_away = 1001,
    protocol_error = 1002,
    unknown_data = 1003,  // binary, in a text-only room
    no_status = 1005,     // a close frame without a payload (never sent as a code)
    bad_payload = 1007,   // invalid UTF-8
    policy_error = 1008,
    too_big = 1009,
    internal_error = 1011,
};

// Whether a client may close with `code` (RFC 6455 §7.4; 1012 and 1013 are registered
// with IANA since).
bool is_valid_close_code(std::uint16_t code) noexcept;

// Checks UTF-8 piece by piece: a code point may be split between pieces.
class utf8_checker {
  public:
    // False at the first byte that cannot be part of valid UTF-8.
    bool feed(const unsigned char* data, std::size_t size) noexcept;
    // No code point is left unfinished.
    bool complete() const noexcept { return needed_ == 0; }

  private:
    std::uint8_t needed_ = 0;  // continuation bytes still expected
    std::uint8_t low_ = 0x80;  // range of the next continuation byte
    std::uint8_t high_ = 0xbf;
};

class frame_reader {
  public:
    enum class event {
        need_more,  // every byte was taken; call again with more
        message,    // a text message is complete in `message`
        ping,       // answer with a pong carrying control_payload()
        pong,
        close,  // the client closes: code() (no_status when it gave none), reason()
        error,  // fail the connection with code(); reason() says why
    };
    struct result {
        event what;
        std::size_t consumed;  // bytes of the input taken, up to and including the event's
    };

    // `max_message_bytes` below 4 GiB.
    explicit frame_reader(std::uint32_t max_message_bytes) noexcept
        : max_message_bytes_(max_message_bytes) {}

    // Reads `size` bytes at `data` up to the first event. A text message's payload is
    // appended to `message`, which the caller leaves alone until event::message (then
    // takes it and leaves it empty). After close or error, input is ignored.
    result feed(const unsigned char* data, std::size_t size, std::string& message);

    // A ping's payload, after event::ping.
    std::string_view control_payload() const noexcept {
        return control_ ? std::string_view(*control_) : std::string_view();
    }
    // After event::close, the client's code; after event::error, the one to close with.
    std::uint16_t code() const noexcept { return code_; }
    // After event::close, the client's reason; after event::error, why.
    std::string_view reason() const noexcept;
    // A close or an error was reported.
    bool done() const noexcept { return done_; }
    // In the middle of a message or a frame.
    bool busy() const noexcept { return in_message_ || header_size_ > 0 || in_payload_; }
    // Frees the room a long control payload took, once it has been used.
    void release_control() noexcept { control_.reset(); }

  private:
    result fail(close_code code, const char* why, std::size_t consumed);
    // Checks a complete header; returns false after fail().
    bool start_frame(std::string& message);
    result end_frame(std::size_t consumed);

    static constexpr std::size_t max_header_bytes = 14;

    // Packed: every idle client holds one.
    std::uint64_t payload_left_ = 0;  // of the current frame
    // A control frame's payload as it arrives, or after an error why; only while
    // there is one.
    std::unique_ptr<std::string> control_;
    std::uint32_t max_message_bytes_;
    std::uint16_t code_ = 0;
    std::uint8_t header_size_ = 0;  // bytes of header_ received; 0 inside a payload
    std::uint8_t mask_offset_ = 0;  // where in the key the next payload byte is
    unsigned char header_[max_header_bytes] = {};
    unsigned char mask_[4] = {};
    std::uint8_t opcode_ = 0;  // of the current frame
    bool fin_ : 1 = false;
    bool in_payload_ : 1 = false;
    bool in_message_ : 1 = false;  // a fragmented text message has begun
    bool done_ : 1 = false;
    bool failed_ : 1 = false;
    utf8_checker utf8_;  // of the message being read
};

}  // namespace chat
