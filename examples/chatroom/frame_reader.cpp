#include "frame_reader.hpp"

#include <broadcaster/utf8.hpp>

#include <algorithm>
#include <cstring>

namespace chat {

namespace {

constexpr std::uint8_t op_continuation = 0x0;
constexpr std::uint8_t op_text = 0x1;
constexpr std::uint8_t op_binary = 0x2;
constexpr std::uint8_t op_close = 0x8;
constexpr std::uint8_t op_ping = 0x9;
constexpr std::uint8_t op_pong = 0xa;

// Room a message takes when its header arrives, at most (see start_frame).
constexpr std::uint64_t max_reserve_ahead = 1024;

// The header's size once its first two bytes are known (a client's frames are masked).
std::size_t header_bytes(unsigned char second) noexcept {
    const auto len7 = second & 0x7f;
    return 2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0) + ((second & 0x80) ? 4 : 0);
}

void unmask(unsigned char* data, std::size_t size, const unsigned char (&key)[4],
            std::uint8_t& offset) noexcept {
    std::size_t i = 0;
    // A word at a time where it lines up with the key.
    if (size >= 16) {
        while (offset != 0 && i < size) {
            data[i++] ^= key[offset];
            offset = (offset + 1) & 3;
        }
        std::uint64_t word_key = 0;
        for (int k = 0; k < 8; ++k) {
            reinterpret_cast<unsigned char*>(&word_key)[k] = key[k & 3];
        }
        for (; i + 8 <= size; i += 8) {
            std::uint64_t word;
            std::memcpy(&word, data + i, 8);
            word ^= word_key;
            std::memcpy(data + i, &word, 8);
        }
    }
    for (; i < size; ++i) {
        data[i] ^= key[offset];
        offset = (offset + 1) & 3;
    }
}

}  // namespace

bool is_valid_close_code(std::uint16_t code) noexcept {
    if (code >= 1000 && code <= 1013) {
        return code != 1004 && code != 1005 && code != 1006;
    }
    return code >= 3000 && code <= 4999;
}

bool utf8_checker::feed(const unsigned char* data, std::size_t size) noexcept {
    std::size_t i = 0;
    while (i < size) {
        if (needed_ == 0) {
            // Chat text is mostly ASCII: eight bytes at a time.
            while (i + 8 <= size) {
                std::uint64_t word;
                std::memcpy(&word, data + i, 8);
                if ((word & 0x8080808080808080ull) != 0) {
                    break;
                }
                i += 8;
            }
            if (i == size) {
                break;
            }
            const auto lead = data[i++];
            if (lead < 0x80) {
                continue;
            }
            low_ = 0x80;
            high_ = 0xbf;
            if (lead >= 0xc2 && lead <= 0xdf) {
                needed_ = 1;
            } else if (lead >= 0xe0 && lead <= 0xef) {
                needed_ = 2;
                low_ = lead == 0xe0 ? 0xa0 : 0x80;   // no overlong forms
                high_ = lead == 0xed ? 0x9f : 0xbf;  // no surrogates
            } else if (lead >= 0xf0 && lead <= 0xf4) {
                needed_ = 3;
                low_ = lead == 0xf0 ? 0x90 : 0x80;
                high_ = lead == 0xf4 ? 0x8f : 0xbf;  // nothing above U+10FFFF
            } else {
                return false;
            }
            continue;
        }
        const auto next = data[i++];
        if (next < low_ || next > high_) {
            return false;
        }
        --needed_;
        low_ = 0x80;
        high_ = 0xbf;
    }
    return true;
}

std::string_view frame_reader::reason() const noexcept {
    if (failed_) {
        return control_payload();
    }
    const auto payload = control_payload();
    return payload.size() > 2 ? payload.substr(2) : std::string_view();
}

frame_reader::result frame_reader::fail(close_code code, const char* why, std::size_t consumed) {
    done_ = true;
    code_ = static_cast<std::uint16_t>(code);
    failed_ = true;
    control_ = std::make_unique<std::string>(why);
    return {event::error, consumed};
}

frame_reader::result frame_reader::feed(const unsigned char* data, std::size_t size,
                                        std::string& message) {
    if (done_) {
        return {event::need_more, size};
    }
    std::size_t i = 0;
    while (i < size) {
        if (!in_payload_) {
            header_[header_size_++] = data[i++];
            if (header_size_ == 2) {
                const auto first = header_[0];
                const auto second = header_[1];
                const std::uint8_t opcode = first & 0x0f;
                const bool fin = (first & 0x80) != 0;
                const bool control = (opcode & 0x8) != 0;
                if ((first & 0x70) != 0) {
                    return fail(close_code::protocol_error, "reserved bits set", i);
                }
                if (opcode != op_continuation && opcode != op_text && opcode != op_binary &&
                    opcode != op_close && opcode != op_ping && opcode != op_pong) {
                    return fail(close_code::protocol_error, "reserved opcode", i);
                }
                if ((second & 0x80) == 0) {
                    return fail(close_code::protocol_error, "unmasked frame", i);
                }
                if (control && (!fin || (second & 0x7f) > 125)) {
                    return fail(close_code::protocol_error, "fragmented or long control frame", i);
                }
                if (opcode == op_close && (second & 0x7f) == 1) {
                    return fail(close_code::protocol_error, "close frame of 1 byte", i);
                }
                if (opcode == op_continuation && !in_message_) {
                    return fail(close_code::protocol_error, "continuation without a start", i);
                }
                if ((opcode == op_text || opcode == op_binary) && in_message_) {
                    return fail(close_code::protocol_error, "new message inside a fragmented one",
                                i);
                }
                if (opcode == op_binary) {
                    return fail(close_code::unknown_data, "text messages only", i);
                }
            }
            if (header_size_ < 2 || header_size_ < header_bytes(header_[1])) {
                continue;
            }
            if (!start_frame(message)) {
                return {event::error, i};
            }
            if (payload_left_ == 0) {
                const auto r = end_frame(i);
                if (r.what != event::need_more) {
                    return r;
                }
            }
            continue;
        }
        const auto take =
            static_cast<std::size_t>(std::min<std::uint64_t>(payload_left_, size - i));
        const bool control = (opcode_ & 0x8) != 0;
        auto& target = control ? *control_ : message;
        const auto old_size = target.size();
        target.append(reinterpret_cast<const char*>(data + i), take);
        auto* payload = reinterpret_cast<unsigned char*>(target.data()) + old_size;
        unmask(payload, take, mask_, mask_offset_);
        payload_left_ -= take;
        i += take;
        if (!control && !utf8_.feed(payload, take)) {
            return fail(close_code::bad_payload, "invalid UTF-8", i);
        }
        if (payload_left_ == 0) {
            const auto r = end_frame(i);
            if (r.what != event::need_more) {
                return r;
            }
        }
    }
    return {event::need_more, size};
}

bool frame_reader::start_frame(std::string& message) {
    const auto len7 = header_[1] & 0x7f;
    std::uint64_t length = len7;
    if (len7 == 126) {
        length = (std::uint64_t{header_[2]} << 8) | header_[3];
        if (length < 126) {
            fail(close_code::protocol_error, "length not in its shortest form", 0);
            return false;
        }
    } else if (len7 == 127) {
        length = 0;
        for (int k = 0; k < 8; ++k) {
            length = (length << 8) | header_[2 + k];
        }
        if ((length >> 63) != 0) {
            fail(close_code::protocol_error, "64-bit length with its top bit set", 0);
            return false;
        }
        if (length <= 0xffff) {
            fail(close_code::protocol_error, "length not in its shortest form", 0);
            return false;
        }
    }
    opcode_ = header_[0] & 0x0f;
    fin_ = (header_[0] & 0x80) != 0;
    std::memcpy(mask_, header_ + header_size_ - 4, 4);
    mask_offset_ = 0;
    header_size_ = 0;
    payload_left_ = length;
    in_payload_ = length > 0;
    if ((opcode_ & 0x8) != 0) {
        control_ = length > 0 ? std::make_unique<std::string>() : nullptr;
        return true;
    }
    if (length > max_message_bytes_ || message.size() + length > max_message_bytes_) {
        fail(close_code::too_big, "message too big", 0);
        return false;
    }
    if (opcode_ == op_text) {
        in_message_ = true;
        utf8_ = {};
        if (fin_) {
            // One frame: most messages take exactly their room. Not more than a small
            // message's ahead of the payload: a header alone must not make the server
            // hold max_message_bytes for a client that then sends nothing.
            message.reserve(std::min<std::uint64_t>(length, max_reserve_ahead));
        }
    }
    return true;
}

frame_reader::result frame_reader::end_frame(std::size_t consumed) {
    in_payload_ = false;
    switch (opcode_) {
        case op_ping:
            return {event::ping, consumed};
        case op_pong:
            return {event::pong, consumed};
        case op_close: {
            const auto payload = control_payload();
            if (payload.empty()) {
                code_ = static_cast<std::uint16_t>(close_code::no_status);
                done_ = true;
                return {event::close, consumed};
            }
            const auto code =
                static_cast<std::uint16_t>((static_cast<unsigned char>(payload[0]) << 8) |
                                           static_cast<unsigned char>(payload[1]));
            if (!is_valid_close_code(code)) {
                return fail(close_code::protocol_error, "invalid close code", consumed);
            }
            if (!broadcaster::is_valid_utf8(payload.substr(2))) {
                return fail(close_code::bad_payload, "close reason not UTF-8", consumed);
            }
            code_ = code;
            done_ = true;
            return {event::close, consumed};
        }
        default:
            break;
    }
    if (!fin_) {
        return {event::need_more, consumed};
    }
    in_message_ = false;
    if (!utf8_.complete()) {
        return fail(close_code::bad_payload, "invalid UTF-8", consumed);
    }
    return {event::message, consumed};
}

}  // namespace chat
