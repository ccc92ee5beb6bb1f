// The chat's WebSocket frame parser (frame_reader.hpp), fed bytes directly: every
// rule it enforces, input split anywhere, and seeded random streams.

#include "frame_reader.hpp"

#include <broadcaster/utf8.hpp>

#include <gtest/gtest.h>

#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <vector>

namespace chat {
namespace {

using event = frame_reader::event;

constexpr unsigned op_cont = 0x0;
constexpr unsigned op_text = 0x1;
constexpr unsigned op_binary = 0x2;
constexpr unsigned op_close = 0x8;
constexpr unsigned op_ping = 0x9;
constexpr unsigned op_pong = 0xa;

enum class length_form { shortest, bits16, bits64 };

struct frame_options {
    bool fin = true;
    unsigned rsv = 0;
    bool mask = true;
    std::uint32_t key = 0x37fa213d;
    length_form form = length_form::shortest;
    std::optional<std::uint64_t> declared = std::nullopt;  // a length other than the payload's
};

// A client's frame (RFC 6455 §5.2).
std::string frame(unsigned opcode, const std::string& payload, frame_options o = {}) {
    std::string out;
    out += static_cast<char>((o.fin ? 0x80 : 0) | (o.rsv << 4) | opcode);
    const std::uint64_t length = o.declared.value_or(payload.size());
    auto form = o.form;
    if (form == length_form::shortest) {
        form = length < 126      ? length_form::shortest
               : length <= 65535 ? length_form::bits16
                                 : length_form::bits64;
    }
    const char mask_bit = o.mask ? static_cast<char>(0x80) : 0;
    if (form == length_form::shortest) {
        out += static_cast<char>(mask_bit | static_cast<char>(length));
    } else if (form == length_form::bits16) {
        out += static_cast<char>(mask_bit | 126);
        out += static_cast<char>(length >> 8);
        out += static_cast<char>(length & 0xff);
    } else {
        out += static_cast<char>(mask_bit | 127);
        for (int i = 7; i >= 0; --i) {
            out += static_cast<char>((length >> (8 * i)) & 0xff);
        }
    }
    unsigned char key[4] = {
        static_cast<unsigned char>(o.key >> 24), static_cast<unsigned char>(o.key >> 16),
        static_cast<unsigned char>(o.key >> 8), static_cast<unsigned char>(o.key)};
    if (o.mask) {
        out.append(reinterpret_cast<const char*>(key), 4);
    }
    for (std::size_t i = 0; i < payload.size(); ++i) {
        out += static_cast<char>(payload[i] ^ (o.mask ? key[i % 4] : 0));
    }
    return out;
}

std::string close_payload(unsigned code, const std::string& reason = "") {
    return std::string{static_cast<char>(code >> 8), static_cast<char>(code & 0xff)} + reason;
}

// What the parser reported for a stream of bytes.
struct seen {
    event what;
    std::string data;  // the message, the ping's payload, the close reason
    unsigned code = 0;
};

// Feeds `bytes` in pieces of `piece` bytes (0: all at once) until it ends or stops.
std::vector<seen> parse(const std::string& bytes, std::size_t piece = 0,
                        std::size_t max_message = 1024) {
    frame_reader reader(max_message);
    std::string message;
    std::vector<seen> events;
    std::size_t offset = 0;
    while (offset < bytes.size() && !reader.done()) {
        const auto size =
            piece == 0 ? bytes.size() - offset : std::min(piece, bytes.size() - offset);
        std::size_t taken = 0;
        while (taken < size && !reader.done()) {
            const auto r =
                reader.feed(reinterpret_cast<const unsigned char*>(bytes.data()) + offset + taken,
                            size - taken, message);
            EXPECT_GT(r.consumed, 0u);
            EXPECT_LE(r.consumed, size - taken);
            taken += r.consumed;
            EXPECT_LE(message.size(), max_message);
            switch (r.what) {
                case event::need_more:
                    break;
                case event::message:
                    events.push_back({r.what, std::exchange(message, {})});
                    break;
                case event::ping:
                    events.push_back({r.what, std::string(reader.control_payload())});
                    break;
                case event::pong:
                    events.push_back({r.what, ""});
                    break;
                case event::close:
                case event::error:
                    events.push_back({r.what, std::string(reader.reason()), reader.code()});
                    break;
            }
        }
        offset += size;
    }
    return events;
}

// The code of the error `bytes` end with, 0 if none.
unsigned error_code_of(const std::string& bytes, std::size_t max_message = 1024) {
    for (const std::size_t piece : {std::size_t{0}, std::size_t{1}, std::size_t{3}}) {
        const auto events = parse(bytes, piece, max_message);
        const unsigned code =
            !events.empty() && events.back().what == event::error ? events.back().code : 0;
        const auto whole = parse(bytes, 0, max_message);
        const unsigned whole_code =
            !whole.empty() && whole.back().what == event::error ? whole.back().code : 0;
        EXPECT_EQ(code, whole_code) << "in pieces of " << piece;
    }
    const auto events = parse(bytes, 0, max_message);
    return !events.empty() && events.back().what == event::error ? events.back().code : 0;
}

TEST(chat_frame_reader, a_text_message_in_any_pieces) {
    const auto bytes = frame(op_text, "hello") + frame(op_text, std::string(300, 'x')) +
                       frame(op_text, std::string(70000, 'y'));
    for (const std::size_t piece : {0, 1, 2, 5, 13, 4096}) {
        const auto events = parse(bytes, piece, 100000);
        ASSERT_EQ(events.size(), 3u) << piece;
        EXPECT_EQ(events[0].data, "hello");
        EXPECT_EQ(events[1].data, std::string(300, 'x'));
        EXPECT_EQ(events[2].data, std::string(70000, 'y'));
    }
}

TEST(chat_frame_reader, fragments_with_control_frames_between) {
    const auto bytes = frame(op_text, "he", {.fin = false}) + frame(op_ping, "1") +
                       frame(op_cont, "", {.fin = false}) + frame(op_pong, "x") +
                       frame(op_cont, "llo") + frame(op_text, "");
    for (const std::size_t piece : {0, 1, 7}) {
        const auto events = parse(bytes, piece);
        ASSERT_EQ(events.size(), 4u);
        EXPECT_EQ(events[0].what, event::ping);
        EXPECT_EQ(events[0].data, "1");
        EXPECT_EQ(events[1].what, event::pong);
        EXPECT_EQ(events[2].what, event::message);
        EXPECT_EQ(events[2].data, "hello");
        EXPECT_EQ(events[3].data, "");
    }
}

TEST(chat_frame_reader, a_ping_of_125_bytes_keeps_its_payload) {
    const std::string payload(125, 'p');
    const auto events = parse(frame(op_ping, payload), 1);
    ASSERT_EQ(events.size(), 1u);
    EXPECT_EQ(events[0].what, event::ping);
    EXPECT_EQ(events[0].data, payload);
}

TEST(chat_frame_reader, reserved_bits_opcodes_and_unmasked_frames_fail_with_1002) {
    for (unsigned rsv = 1; rsv < 8; ++rsv) {
        EXPECT_EQ(error_code_of(frame(op_text, "hi", {.rsv = rsv})), 1002u) << rsv;
    }
    for (unsigned opcode : {3u, 4u, 5u, 6u, 7u, 0xbu, 0xcu, 0xdu, 0xeu, 0xfu}) {
        EXPECT_EQ(error_code_of(frame(opcode, "x")), 1002u) << opcode;
    }
    EXPECT_EQ(error_code_of(frame(op_text, "hi", {.mask = false})), 1002u);
    EXPECT_EQ(error_code_of(frame(op_ping, "", {.mask = false})), 1002u);
}

TEST(chat_frame_reader, lengths_must_be_minimal_and_below_2_to_the_63) {
    EXPECT_EQ(error_code_of(frame(op_text, "hello", {.form = length_form::bits16})), 1002u);
    EXPECT_EQ(error_code_of(frame(op_text, "hello", {.form = length_form::bits64})), 1002u);
    EXPECT_EQ(error_code_of(frame(op_text, std::string(200, 'a'), {.form = length_form::bits64})),
              1002u);
    EXPECT_EQ(error_code_of(frame(op_text, "", {.declared = 0x8000000000000005ull})), 1002u);
    EXPECT_EQ(error_code_of(frame(op_text, "", {.declared = ~0ull})), 1002u);
    EXPECT_EQ(error_code_of(frame(op_text, std::string(126, 'a'))), 0u);
    EXPECT_EQ(error_code_of(frame(op_text, std::string(65536, 'a')), 65536), 0u);
}

TEST(chat_frame_reader, control_frames_are_short_and_whole) {
    EXPECT_EQ(error_code_of(frame(op_ping, std::string(126, 'p'))), 1002u);
    EXPECT_EQ(error_code_of(frame(op_pong, std::string(126, 'p'))), 1002u);
    EXPECT_EQ(error_code_of(frame(op_close, close_payload(1000, std::string(124, 'r')))), 1002u);
    EXPECT_EQ(error_code_of(frame(op_ping, "a", {.fin = false})), 1002u);
    EXPECT_EQ(error_code_of(frame(op_close, "\x03")), 1002u);  // 1 byte
}

TEST(chat_frame_reader, fragments_follow_each_other) {
    EXPECT_EQ(error_code_of(frame(op_cont, "x")), 1002u);
    EXPECT_EQ(error_code_of(frame(op_cont, "x", {.fin = false})), 1002u);
    EXPECT_EQ(error_code_of(frame(op_text, "a", {.fin = false}) + frame(op_text, "b")), 1002u);
    EXPECT_EQ(error_code_of(frame(op_text, "a", {.fin = false}) + frame(op_binary, "b")), 1002u);
}

TEST(chat_frame_reader, binary_fails_with_1003_at_its_first_frame) {
    EXPECT_EQ(error_code_of(frame(op_binary, "\x01\x02")), 1003u);
    EXPECT_EQ(error_code_of(frame(op_binary, "", {.fin = false})), 1003u);
    // Before its payload arrives.
    const auto events = parse(frame(op_binary, std::string(500, 'b')).substr(0, 8));
    ASSERT_EQ(events.size(), 1u);
    EXPECT_EQ(events[0].code, 1003u);
}

TEST(chat_frame_reader, invalid_utf8_fails_with_1007_as_soon_as_it_shows) {
    for (const std::string text : {"\xc0\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xff", "\x80",
                                   "\xe2\x82", "a\xf0\x9f\x98"}) {
        EXPECT_EQ(error_code_of(frame(op_text, text)), 1007u);
    }
    // A code point split between fragments is fine; one left unfinished is not.
    EXPECT_EQ(error_code_of(frame(op_text, "\xe2", {.fin = false}) + frame(op_cont, "\x82\xac")),
              0u);
    EXPECT_EQ(error_code_of(frame(op_text, "abc", {.fin = false}) + frame(op_cont, "\xf0\x9f")),
              1007u);
    EXPECT_EQ(error_code_of(frame(op_text, "\xce", {.fin = false}) + frame(op_cont, "A")), 1007u);
    // The first fragment fails before the message ends.
    EXPECT_EQ(error_code_of(frame(op_text, "ok\xc0\xaf", {.fin = false})), 1007u);
}

TEST(chat_frame_reader, messages_over_the_limit_fail_with_1009_before_their_payload) {
    EXPECT_EQ(error_code_of(frame(op_text, std::string(1024, 'm'))), 0u);
    EXPECT_EQ(error_code_of(frame(op_text, std::string(1025, 'm'))), 1009u);
    EXPECT_EQ(error_code_of(frame(op_text, std::string(600, 'm'), {.fin = false}) +
                            frame(op_cont, std::string(600, 'm'))),
              1009u);
    EXPECT_EQ(error_code_of(frame(op_text, "", {.declared = 1ull << 40})), 1009u);
}

TEST(chat_frame_reader, valid_closes_give_their_code_and_reason) {
    for (const unsigned code : {1000u, 1001u, 1002u, 1003u, 1007u, 1008u, 1009u, 1010u, 1011u,
                                1012u, 1013u, 3000u, 3999u, 4000u, 4999u}) {
        const auto events = parse(frame(op_close, close_payload(code, "bye \xce\xba")), 1);
        ASSERT_EQ(events.size(), 1u) << code;
        EXPECT_EQ(events[0].what, event::close) << code;
        EXPECT_EQ(events[0].code, code);
        EXPECT_EQ(events[0].data, "bye \xce\xba");
    }
    const auto empty = parse(frame(op_close, ""));
    ASSERT_EQ(empty.size(), 1u);
    EXPECT_EQ(empty[0].what, event::close);
    EXPECT_EQ(empty[0].code, 1005u);
}

TEST(chat_frame_reader, invalid_close_codes_fail_with_1002_and_bad_reasons_with_1007) {
    for (const unsigned code : {0u, 999u, 1004u, 1005u, 1006u, 1014u, 1015u, 1016u, 1100u, 2000u,
                                2999u, 5000u, 6000u, 65535u}) {
        EXPECT_EQ(error_code_of(frame(op_close, close_payload(code))), 1002u) << code;
    }
    EXPECT_EQ(error_code_of(frame(op_close, close_payload(1000, "\xc0\xaf"))), 1007u);
    EXPECT_EQ(error_code_of(frame(op_close, close_payload(1000, "\xce"))), 1007u);
}

TEST(chat_frame_reader, nothing_after_a_close_or_an_error) {
    frame_reader reader(1024);
    std::string message;
    const auto bytes = frame(op_close, close_payload(1000)) + frame(op_text, "late");
    const auto* data = reinterpret_cast<const unsigned char*>(bytes.data());
    const auto first = reader.feed(data, bytes.size(), message);
    EXPECT_EQ(first.what, event::close);
    EXPECT_LT(first.consumed, bytes.size());
    const auto rest = reader.feed(data + first.consumed, bytes.size() - first.consumed, message);
    EXPECT_EQ(rest.what, event::need_more);
    EXPECT_TRUE(message.empty());
}

TEST(chat_frame_reader, between_frames_it_holds_nothing_but_a_partial_header) {
    frame_reader reader(1 << 20);
    std::string message;
    const auto bytes = frame(op_text, std::string(100, 'a'));
    const auto* data = reinterpret_cast<const unsigned char*>(bytes.data());
    EXPECT_EQ(reader.feed(data, 3, message).what, event::need_more);
    EXPECT_TRUE(reader.busy());
    EXPECT_TRUE(message.empty());  // the header is not complete: no payload yet
    EXPECT_EQ(reader.feed(data + 3, 10, message).what, event::need_more);
    EXPECT_EQ(message, std::string(7, 'a'));  // unmasked as it came
    const auto last = reader.feed(data + 13, bytes.size() - 13, message);
    EXPECT_EQ(last.what, event::message);
    EXPECT_FALSE(reader.busy());
    EXPECT_EQ(message, std::string(100, 'a'));
}

// The UTF-8 check, fed in random pieces, agrees with the library's on random text.
TEST(chat_frame_reader, utf8_checks_in_pieces_agree_with_the_whole) {
    std::mt19937_64 random(20261203);
    const std::vector<std::string> pieces = {"a",
                                             "\xce\xba",
                                             "\xe2\x82\xac",
                                             "\xc0",
                                             "\xf0\x9f\x98\x80",
                                             "\xed\xa0\x80",
                                             "\xed\x9f\xbf",
                                             "\xf4\x8f\xbf\xbf",
                                             "\xf4\x90",
                                             "\x80",
                                             "\xef\xbf\xbf",
                                             "\xe0\xa0\x80",
                                             "\xe0\x9f"};
    for (int round = 0; round < 20000; ++round) {
        std::string text;
        const int count = static_cast<int>(random() % 12);
        for (int i = 0; i < count; ++i) {
            text += random() % 4 == 0 ? std::string(1, static_cast<char>(random() & 0xff))
                                      : pieces[random() % pieces.size()];
        }
        utf8_checker checker;
        bool valid = true;
        std::size_t offset = 0;
        while (offset < text.size() && valid) {
            const auto size = std::min<std::size_t>(1 + random() % 9, text.size() - offset);
            valid =
                checker.feed(reinterpret_cast<const unsigned char*>(text.data()) + offset, size);
            offset += size;
        }
        EXPECT_EQ(valid && checker.complete(), broadcaster::is_valid_utf8(text))
            << "round " << round;
    }
}

// Random valid streams (messages in random fragments, control frames between, random
// masks) arrive whole in any pieces; random corruptions of them never crash, never
// grow a message past the limit, and end in at most one close or error.
TEST(chat_frame_reader, seeded_random_streams) {
    std::mt19937_64 random(6455);
    const auto pick = [&](std::uint64_t n) { return random() % n; };
    for (int round = 0; round < 2000; ++round) {
        std::string bytes;
        std::vector<seen> expected;
        const int messages = 1 + static_cast<int>(pick(5));
        for (int m = 0; m < messages; ++m) {
            std::string text;
            const auto size = pick(5) == 0 ? pick(1000) : pick(40);
            while (text.size() < size) {
                text += pick(8) == 0 ? "\xe2\x82\xac" : "a";
            }
            std::size_t start = 0;
            bool first = true;
            do {
                const auto length = std::min<std::size_t>(text.size() - start, pick(300));
                const bool fin = start + length == text.size() && pick(4) != 0;
                const auto part = text.substr(start, length);
                bytes += frame(first ? op_text : op_cont, part,
                               {.fin = fin, .key = static_cast<std::uint32_t>(random())});
                start += length;
                first = false;
                if (!fin && pick(4) == 0) {  // between fragments
                    const auto payload = std::string(pick(126), 'p');
                    bytes += frame(op_ping, payload, {.key = static_cast<std::uint32_t>(random())});
                    expected.push_back({event::ping, payload});
                }
                if (fin) {
                    break;
                }
                if (start == text.size()) {
                    bytes += frame(op_cont, "", {.key = static_cast<std::uint32_t>(random())});
                    break;
                }
            } while (true);
            expected.push_back({event::message, text});
        }
        const auto piece = pick(3) == 0 ? 0 : 1 + pick(64);
        const auto events = parse(bytes, piece, 4096);
        ASSERT_EQ(events.size(), expected.size()) << "round " << round;
        for (std::size_t i = 0; i < events.size(); ++i) {
            ASSERT_EQ(events[i].what, expected[i].what) << "round " << round << ", event " << i;
            ASSERT_EQ(events[i].data, expected[i].data) << "round " << round << ", event " << i;
        }
        // Corrupted: a few bytes changed, or cut short.
        auto corrupted = bytes;
        for (int i = 0, n = static_cast<int>(pick(4)); i < n && !corrupted.empty(); ++i) {
            corrupted[pick(corrupted.size())] = static_cast<char>(random() & 0xff);
        }
        corrupted.resize(pick(corrupted.size() + 1));
        const auto after = parse(corrupted, 1 + pick(64), 512);
        for (std::size_t i = 0; i + 1 < after.size(); ++i) {
            ASSERT_NE(after[i].what, event::error) << "round " << round;
            ASSERT_NE(after[i].what, event::close) << "round " << round;
        }
        if (!after.empty() && after.back().what == event::error) {
            const auto code = after.back().code;
            ASSERT_TRUE(code == 1002 || code == 1003 || code == 1007 || code == 1009) << code;
        }
    }
}

// A header announcing a large message, then nothing: the parser holds no more than a
// small message's room for it (it reserved all 60,000 bytes at once before).
TEST(chat_frame_reader, a_header_alone_does_not_reserve_the_whole_message) {
    frame_reader reader(64 * 1024);
    std::string message;
    const auto header = frame(op_text, "", {.declared = 60000});
    const auto r =
        reader.feed(reinterpret_cast<const unsigned char*>(header.data()), header.size(), message);
    EXPECT_EQ(r.what, event::need_more);
    EXPECT_EQ(r.consumed, header.size());
    EXPECT_LE(message.capacity(), 1024u);
    EXPECT_TRUE(reader.busy());
}

}  // namespace
}  // namespace chat
