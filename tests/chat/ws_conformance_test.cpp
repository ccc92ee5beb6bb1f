// The chat server's own WebSocket conformance suite (RFC 6455, and the HTTP of the
// handshake, RFC 7230): a raw-frame client against the real broadcaster-chat binary on
// memory://. Cases are listed in docs/chat-conformance.md. A text message the client
// sends is published to the room and comes back to it: that is the "echo" below.

#include "ws_chat_process.hpp"
#include "ws_raw_client.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <random>
#include <set>
#include <thread>

namespace broadcaster::test::ws {
namespace {

// An open WebSocket to `port` (101 checked).
std::unique_ptr<raw_client> open_websocket(unsigned short port,
                                           const std::vector<std::string>& extra = {}) {
    auto c = std::make_unique<raw_client>(port);
    const auto head = c->upgrade(extra);
    if (!head || head->status != 101) {
        throw std::runtime_error("upgrade refused: " + (head ? head->text : "no answer"));
    }
    return c;
}

// What the server did after the client's last frames: the frames it sent up to and
// including its close frame, and how the connection ended after that.
struct outcome {
    std::vector<frame> frames;
    std::vector<std::string> messages;  // the data frames reassembled
    std::optional<frame> close;
    std::vector<frame> after_close;  // must stay empty (RFC 6455 §5.5.1)
    ending end = ending::open;

    unsigned close_code() const { return close ? close->close_code() : 0; }
};

// Reads until the server's close frame (answering it, as a client must) and then to the
// end of the connection.
outcome finish(raw_client& c, std::chrono::milliseconds timeout = 5000ms) {
    outcome result;
    while (auto f = c.read_frame(timeout)) {
        if (f->is_close()) {
            result.close = std::move(f);
            break;
        }
        if (f->opcode == op_text || f->opcode == op_continuation) {
            if (f->opcode == op_text || result.messages.empty()) {
                result.messages.emplace_back();
            }
            result.messages.back() += f->payload;
        }
        result.frames.push_back(std::move(*f));
    }
    if (!result.close) {
        result.end = c.ended();
        return result;
    }
    c.send_frame(op_close, result.close->payload.substr(0, 2));
    while (auto f = c.read_frame(timeout)) {
        result.after_close.push_back(std::move(*f));
    }
    result.end = c.ended();
    return result;
}

// Reads frames until a text frame; pongs and other frames before it are returned too.
std::vector<frame> until_text(raw_client& c) {
    std::vector<frame> frames;
    while (auto f = c.read_frame()) {
        frames.push_back(*f);
        if (f->opcode == op_text || f->is_close()) {
            break;
        }
    }
    return frames;
}

// The server's answer to one frame on a fresh connection: its close code.
unsigned close_code_for(unsigned short port, const std::string& bytes) {
    auto c = open_websocket(port);
    c->send(bytes);
    const auto result = finish(*c);
    EXPECT_TRUE(result.after_close.empty()) << "data after the close frame";
    return result.close_code();
}

std::string hex(std::string_view bytes) {
    static constexpr char digits[] = "0123456789abcdef";
    std::string out;
    for (const unsigned char c : bytes) {
        out += digits[c >> 4];
        out += digits[c & 15];
    }
    return out;
}

class conformance : public ::testing::Test {
  protected:
    chat_process chat{{.args = {"--max-message-bytes", "1024"}}};
    unsigned short port() const { return chat.port(); }
};

// --- Handshake (RFC 6455 §4.2, RFC 7230) -------------------------------------------

TEST_F(conformance, handshake_accepts_a_valid_upgrade) {
    raw_client c(port());
    c.send(upgrade_request("127.0.0.1:" + std::to_string(port())));
    const auto head = c.read_http();
    ASSERT_TRUE(head);
    EXPECT_EQ(head->status, 101) << head->text;
    // RFC 6455 §1.3's example key and answer.
    EXPECT_TRUE(head->has("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")) << head->text;
    EXPECT_TRUE(head->has("Upgrade: websocket")) << head->text;
}

// RFC 6455 §4.1 tells a client to wait for the 101 before sending frames; one that does
// not loses nothing: what it sent with the request is read like the rest (it was
// dropped with the HTTP reader's buffer).
TEST_F(conformance, frames_sent_with_the_upgrade_request_are_read) {
    raw_client c(port());
    c.send(upgrade_request("127.0.0.1:" + std::to_string(port())) + encode_frame(op_text, "early") +
           encode_frame(op_text, "bird"));
    const auto head = c.read_http();
    ASSERT_TRUE(head);
    EXPECT_EQ(head->status, 101) << head->text;
    for (const std::string expected : {"early", "bird"}) {
        const auto echo = c.read_frame();
        ASSERT_TRUE(echo) << "no echo of " << expected;
        EXPECT_EQ(echo->opcode, op_text);
        EXPECT_EQ(echo->payload, expected);
    }
}

TEST_F(conformance, handshake_refuses_keys_that_are_not_base64_of_16_bytes) {
    const std::vector<std::string> keys = {
        "dGhl",                      // base64 of 3 bytes
        "dGhlIHNhbXBsZSBub25jZQ",    // 16 bytes without the padding
        "dGhlIHNhbXBsZSBub25jZR==",  // 24 characters, but stray bits in the last
        "dGhlIHNhbXBsZSBub25jZSE=",  // 17 bytes
        "!!!!!!!!!!!!!!!!!!!!!A==",  // not base64
        "dGhlIHNhbXBs ZSBub25jZQ=",  // a space inside
        "x"};
    for (const auto& key : keys) {
        raw_client c(port());
        c.send(upgrade_request("127.0.0.1", key));
        const auto head = c.read_http();
        ASSERT_TRUE(head) << key;
        EXPECT_EQ(head->status, 400) << key << "\n" << head->text;
    }
    raw_client twice(port());
    twice.send(
        upgrade_request("127.0.0.1", good_key, {"Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAA=="}));
    const auto head = twice.read_http();
    ASSERT_TRUE(head);
    EXPECT_EQ(head->status, 400) << head->text;
    raw_client none(port());
    none.send(upgrade_request("127.0.0.1", ""));
    EXPECT_EQ(none.read_http().value_or(http_head{}).status, 400);
    EXPECT_EQ(metric(port(), "chat_bad_requests_total"), keys.size() + 2);
}

TEST_F(conformance, handshake_refuses_other_websocket_versions_with_426) {
    raw_client c(port());
    std::string request = upgrade_request("127.0.0.1");
    request.replace(request.find("Version: 13"), 11, "Version: 8");
    c.send(request);
    const auto head = c.read_http();
    ASSERT_TRUE(head);
    EXPECT_EQ(head->status, 426) << head->text;
    EXPECT_TRUE(head->has("Sec-WebSocket-Version: 13")) << head->text;
}

TEST_F(conformance, http11_requests_need_exactly_one_host) {
    const auto status_of = [&](const std::string& request) {
        raw_client c(port());
        c.send(request);
        const auto head = c.read_http();
        return head ? head->status : 0;
    };
    EXPECT_EQ(status_of(upgrade_request("")), 400);
    EXPECT_EQ(status_of("GET /healthz HTTP/1.1\r\n\r\n"), 400);
    EXPECT_EQ(status_of("GET /healthz HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"), 400);
    EXPECT_EQ(status_of("GET /healthz HTTP/1.1\r\nHost: user@a\r\n\r\n"), 400);
    EXPECT_EQ(status_of("GET /healthz HTTP/1.0\r\n\r\n"), 200);  // Host is HTTP/1.1's
    EXPECT_EQ(status_of("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:1\r\n\r\n"), 200);
}

TEST_F(conformance, requests_with_ambiguous_framing_get_400_and_are_closed) {
    const std::vector<std::string> requests = {
        // RFC 7230 §3.3.3: chunked is not the final coding, so the length is unknown
        "GET /healthz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n"
        "Content-Length: 5\r\n\r\nhello",
        "GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
        "Transfer-Encoding: xchunked\r\n\r\nhello",
        "GET /healthz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
        "GET /healthz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n",
        "GET /healthz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
        "Content-Length: 5\r\n\r\n0\r\n\r\n",
    };
    for (const auto& request : requests) {
        raw_client c(port());
        // A second request behind it: a server that misread the framing would answer it.
        c.send(request + "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
        const auto head = c.read_http();
        ASSERT_TRUE(head) << request;
        EXPECT_EQ(head->status, 400) << request << "\n" << head->text;
        c.read_to_end();
        EXPECT_EQ(c.take_rest().find("HTTP/1.1 200"), std::string::npos) << request;
    }
    raw_client chunked(port());  // well framed: chunked alone
    chunked.send("GET /healthz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n");
    EXPECT_EQ(chunked.read_http().value_or(http_head{}).status, 200);
}

// --- Origin (cross-site WebSocket hijacking) ----------------------------------------

TEST_F(conformance, origin_same_origin_and_no_origin_are_accepted) {
    const auto here = "127.0.0.1:" + std::to_string(port());
    const auto status_of = [&](const std::string& host, const std::vector<std::string>& extra) {
        raw_client c(port());
        c.send(upgrade_request(host, good_key, extra));
        const auto head = c.read_http();
        return head ? head->status : 0;
    };
    EXPECT_EQ(status_of(here, {"Origin: http://" + here}), 101);
    EXPECT_EQ(status_of(here, {"Origin: HTTP://127.0.0.1:" + std::to_string(port())}), 101);
    EXPECT_EQ(status_of("localhost:" + std::to_string(port()),
                        {"Origin: http://localhost:" + std::to_string(port())}),
              101);
    EXPECT_EQ(status_of("chat.example", {"Origin: http://chat.example:80"}), 101);
    EXPECT_EQ(status_of(here, {}), 101);  // not a browser
    EXPECT_EQ(metric(port(), "chat_forbidden_origins_total"), 0u);
}

TEST_F(conformance, origin_of_another_site_is_refused_with_403) {
    const auto here = "127.0.0.1:" + std::to_string(port());
    const std::vector<std::string> origins = {
        "http://evil.example",
        "http://127.0.0.1:" + std::to_string(port() == 1 ? 2 : 1),
        "https://127.0.0.1",  // another port (443)
        "null",
        "",
        "http://" + here + "@evil.example"};
    for (const auto& origin : origins) {
        raw_client c(port());
        c.send(upgrade_request(here, good_key, {"Origin: " + origin}));
        const auto head = c.read_http();
        ASSERT_TRUE(head) << origin;
        EXPECT_EQ(head->status, 403) << origin << "\n" << head->text;
    }
    raw_client two(port());
    two.send(upgrade_request(here, good_key, {"Origin: http://" + here, "Origin: http://evil"}));
    EXPECT_EQ(two.read_http().value_or(http_head{}).status, 403);
    EXPECT_EQ(metric(port(), "chat_forbidden_origins_total"), origins.size() + 1);
}

TEST(conformance_origin, allow_origin_adds_origins_and_star_allows_any) {
    chat_process listed({.args = {"--allow-origin", "https://Chat.Example.com/", "--allow-origin",
                                  "http://[::1]:9000"}});
    const auto status_of = [&](unsigned short port, const std::string& origin) {
        raw_client c(port);
        c.send(upgrade_request("127.0.0.1", good_key, {"Origin: " + origin}));
        const auto head = c.read_http();
        return head ? head->status : 0;
    };
    EXPECT_EQ(status_of(listed.port(), "https://chat.example.com"), 101);
    EXPECT_EQ(status_of(listed.port(), "https://chat.example.com:443"), 101);
    EXPECT_EQ(status_of(listed.port(), "http://[::1]:9000"), 101);
    EXPECT_EQ(status_of(listed.port(), "http://chat.example.com"), 403);
    EXPECT_EQ(status_of(listed.port(), "https://other.example"), 403);

    chat_process any({.args = {"--allow-origin", "*"}});
    EXPECT_EQ(status_of(any.port(), "https://other.example"), 101);
    EXPECT_EQ(status_of(any.port(), "null"), 101);
}

// --- Framing (RFC 6455 §5.2) -------------------------------------------------------

TEST_F(conformance, reserved_bits_fail_with_1002) {
    for (const unsigned rsv : {1u, 2u, 4u, 7u}) {
        EXPECT_EQ(close_code_for(port(), encode_frame(op_text, "hi", {.rsv = rsv})), 1002u)
            << "rsv " << rsv;
    }
    // also on a control frame
    EXPECT_EQ(close_code_for(port(), encode_frame(op_ping, "hi", {.rsv = 4})), 1002u);
}

TEST_F(conformance, reserved_opcodes_fail_with_1002) {
    for (const unsigned opcode : {3u, 4u, 5u, 6u, 7u, 0xbu, 0xcu, 0xdu, 0xeu, 0xfu}) {
        EXPECT_EQ(close_code_for(port(), encode_frame(opcode, "x")), 1002u) << "opcode " << opcode;
    }
}

TEST_F(conformance, unmasked_client_frames_fail_with_1002) {
    EXPECT_EQ(close_code_for(port(), encode_frame(op_text, "hi", {.mask = false})), 1002u);
    EXPECT_EQ(close_code_for(port(), encode_frame(op_ping, "", {.mask = false})), 1002u);
}

TEST_F(conformance, binary_frames_close_with_1003) {
    EXPECT_EQ(close_code_for(port(), encode_frame(op_binary, std::string("\x01\x02", 2))), 1003u);
}

TEST_F(conformance, non_minimal_lengths_fail_with_1002) {
    EXPECT_EQ(close_code_for(port(), encode_frame(op_text, "hello", {.form = length_form::bits16})),
              1002u);
    EXPECT_EQ(close_code_for(port(), encode_frame(op_text, "hello", {.form = length_form::bits64})),
              1002u);
    EXPECT_EQ(close_code_for(port(), encode_frame(op_text, std::string(200, 'a'),
                                                  {.form = length_form::bits64})),
              1002u);
}

TEST_F(conformance, control_frames_over_125_bytes_or_fragmented_fail_with_1002) {
    EXPECT_EQ(close_code_for(port(), encode_frame(op_ping, std::string(126, 'p'))), 1002u);
    EXPECT_EQ(close_code_for(port(), encode_frame(op_pong, std::string(126, 'p'))), 1002u);
    EXPECT_EQ(
        close_code_for(port(), encode_frame(op_close, close_payload(1000, std::string(124, 'r')))),
        1002u);
    EXPECT_EQ(close_code_for(port(), encode_frame(op_ping, "a", {.fin = false})), 1002u);
}

TEST_F(conformance, pings_get_pongs_with_their_payload_and_pongs_are_ignored) {
    auto c = open_websocket(port());
    for (const auto& payload : {std::string(), std::string("there?"), std::string(125, 'z')}) {
        c->send_frame(op_ping, payload);
        const auto f = c->read_frame();
        ASSERT_TRUE(f);
        EXPECT_EQ(f->opcode, op_pong);
        EXPECT_EQ(f->payload, payload);
        EXPECT_FALSE(f->masked);  // RFC 6455 §5.1: a server never masks
        EXPECT_TRUE(f->fin);
    }
    c->send_frame(op_pong, "unsolicited");
    c->send_frame(op_text, "still here");
    const auto frames = until_text(*c);
    ASSERT_EQ(frames.size(), 1u);
    EXPECT_EQ(frames[0].payload, "still here");
}

// --- Fragmentation (RFC 6455 §5.4) -------------------------------------------------

TEST_F(conformance, fragmented_message_with_interleaved_pings_arrives_whole) {
    auto c = open_websocket(port());
    c->send_frame(op_text, "Hel", {.fin = false});
    c->send_frame(op_ping, "1");
    c->send_frame(op_continuation, "lo, ", {.fin = false});
    c->send_frame(op_ping, "2");
    c->send_frame(op_continuation, "", {.fin = false});
    c->send_frame(op_continuation, "world", {.fin = true});
    const auto frames = until_text(*c);
    ASSERT_EQ(frames.size(), 3u);
    EXPECT_EQ(frames[0].opcode, op_pong);
    EXPECT_EQ(frames[0].payload, "1");
    EXPECT_EQ(frames[1].opcode, op_pong);
    EXPECT_EQ(frames[1].payload, "2");
    EXPECT_EQ(frames[2].opcode, op_text);
    EXPECT_EQ(frames[2].payload, "Hello, world");
}

TEST_F(conformance, empty_messages_and_empty_fragments_are_echoed) {
    auto c = open_websocket(port());
    c->send_frame(op_text, "");
    auto frames = until_text(*c);
    ASSERT_EQ(frames.size(), 1u);
    EXPECT_EQ(frames[0].payload, "");
    c->send_frame(op_text, "", {.fin = false});
    c->send_frame(op_continuation, "abc", {.fin = false});
    c->send_frame(op_continuation, "", {.fin = true});
    frames = until_text(*c);
    ASSERT_EQ(frames.size(), 1u);
    EXPECT_EQ(frames[0].payload, "abc");
}

// The server frames room messages itself (text_frame.hpp): each length encoding, at
// its edges, arrives as one text frame with the whole message (RFC 6455 §5.2).
TEST(conformance_frames, messages_at_each_length_encoding_edge_arrive_whole) {
    chat_process chat{{.args = {"--max-message-bytes", "70000"}}};
    auto c = open_websocket(chat.port());
    for (const std::size_t size : {0u, 1u, 125u, 126u, 127u, 65535u, 65536u, 65537u}) {
        const std::string message(size, static_cast<char>('a' + size % 26));
        c->send_frame(op_text, message);
        const auto frames = until_text(*c);
        ASSERT_EQ(frames.size(), 1u) << size;
        EXPECT_EQ(frames[0].opcode, op_text) << size;
        EXPECT_EQ(frames[0].payload.size(), size);
        EXPECT_TRUE(frames[0].payload == message) << size;  // not printed: up to 64 KiB
    }
}

TEST_F(conformance, continuation_without_a_start_fails_with_1002) {
    EXPECT_EQ(close_code_for(port(), encode_frame(op_continuation, "x")), 1002u);
    EXPECT_EQ(close_code_for(port(), encode_frame(op_continuation, "x", {.fin = false})), 1002u);
}

TEST_F(conformance, a_new_message_inside_a_fragmented_one_fails_with_1002) {
    EXPECT_EQ(close_code_for(
                  port(), encode_frame(op_text, "a", {.fin = false}) + encode_frame(op_text, "b")),
              1002u);
    EXPECT_EQ(close_code_for(port(), encode_frame(op_text, "a", {.fin = false}) +
                                         encode_frame(op_binary, "b")),
              1002u);
}

// --- UTF-8 (RFC 6455 §8.1) ---------------------------------------------------------

TEST_F(conformance, valid_utf8_is_echoed_intact) {
    auto c = open_websocket(port());
    const std::vector<std::string> texts = {
        "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5",  // κόσμε
        "\xf0\x9f\x98\x80",                              // U+1F600
        "\xf4\x8f\xbf\xbf",                              // U+10FFFF, the last
        "\xef\xbf\xbf",                                  // U+FFFF (a noncharacter, valid)
        "\xed\x9f\xbf\xee\x80\x80",                      // around the surrogates
        std::string("nul\0inside", 10)};
    for (const auto& text : texts) {
        c->send_frame(op_text, text);
        const auto frames = until_text(*c);
        ASSERT_EQ(frames.size(), 1u) << hex(text);
        EXPECT_EQ(frames[0].payload, text) << hex(text);
    }
}

TEST_F(conformance, invalid_utf8_fails_with_1007) {
    const std::vector<std::string> texts = {
        "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80\x65\x64\x69\x74\x65\x64",
        "\xc0\xaf",          // overlong '/'
        "\xe0\x80\xaf",      // overlong, 3 bytes
        "\xf8\x88\x80\x80",  // 5-byte form
        "\xf4\x90\x80\x80",  // over U+10FFFF
        "\xed\xbf\xbf",      // a surrogate
        "\x80",              // a lone continuation byte
        "\xfe",
        "\xff",
        "abc\xce",  // truncated at the end
    };
    for (const auto& text : texts) {
        EXPECT_EQ(close_code_for(port(), encode_frame(op_text, text)), 1007u) << hex(text);
    }
}

TEST_F(conformance, utf8_across_fragments) {
    auto c = open_websocket(port());
    // A code point split over frames is fine.
    c->send_frame(op_text, "a\xf0", {.fin = false});
    c->send_frame(op_continuation, "\x9f\x98", {.fin = false});
    c->send_frame(op_continuation, "\x80z", {.fin = true});
    const auto frames = until_text(*c);
    ASSERT_EQ(frames.size(), 1u);
    EXPECT_EQ(frames[0].payload, "a\xf0\x9f\x98\x80z");

    // A message that ends inside a code point is not.
    EXPECT_EQ(close_code_for(port(), encode_frame(op_text, "abc", {.fin = false}) +
                                         encode_frame(op_continuation, "\xf0\x9f")),
              1007u);
    // A bad continuation is caught in its fragment.
    EXPECT_EQ(close_code_for(port(), encode_frame(op_text, "\xce", {.fin = false}) +
                                         encode_frame(op_continuation, "A")),
              1007u);
    // Fail fast: an invalid first fragment closes before the message ends.
    EXPECT_EQ(close_code_for(port(), encode_frame(op_text, "ok\xc0\xaf", {.fin = false})), 1007u);
}

// --- Closing (RFC 6455 §5.5.1, §7.4) -----------------------------------------------

TEST_F(conformance, valid_close_codes_and_reasons_are_echoed) {
    for (const unsigned code : {1000u, 1001u, 1002u, 1003u, 1007u, 1008u, 1009u, 1010u, 1011u,
                                3000u, 3999u, 4000u, 4999u}) {
        auto c = open_websocket(port());
        c->send_frame(op_close, close_payload(code, "bye"));
        const auto result = finish(*c);
        ASSERT_TRUE(result.close) << code;
        EXPECT_EQ(result.close_code(), code);
        EXPECT_TRUE(result.frames.empty()) << code;
        EXPECT_NE(result.end, ending::timeout) << code;
    }
    auto c = open_websocket(port());  // the longest reason: 123 bytes
    c->send_frame(op_close, close_payload(1000, std::string(123, 'r')));
    EXPECT_EQ(finish(*c).close_code(), 1000u);
}

TEST_F(conformance, a_close_without_payload_is_answered) {
    auto c = open_websocket(port());
    c->send_frame(op_close, "");
    const auto result = finish(*c);
    ASSERT_TRUE(result.close);
    EXPECT_TRUE(result.close_code() == 1005u || result.close_code() == 1000u)
        << result.close_code();
}

TEST_F(conformance, close_codes_reserved_by_the_rfc_fail_with_1002) {
    for (const unsigned code :
         {0u, 999u, 1004u, 1005u, 1006u, 1014u, 1015u, 1016u, 1100u, 2000u, 2999u}) {
        EXPECT_EQ(close_code_for(port(), encode_frame(op_close, close_payload(code))), 1002u)
            << code;
    }
    EXPECT_EQ(close_code_for(port(), encode_frame(op_close, "\x03")), 1002u);  // 1 byte
}

// RFC 6455 §7.4.2: codes above 4999 are not defined.
TEST_F(conformance, close_codes_above_4999_fail_with_1002) {
    for (const unsigned code : {5000u, 6000u, 65535u}) {
        EXPECT_EQ(close_code_for(port(), encode_frame(op_close, close_payload(code))), 1002u)
            << code;
    }
}

TEST_F(conformance, a_close_reason_that_is_not_utf8_fails) {
    const auto code =
        close_code_for(port(), encode_frame(op_close, close_payload(1000, "\xc0\xaf")));
    EXPECT_TRUE(code == 1002u || code == 1007u) << code;
}

// RFC 6455 §5.5.1: after sending a close frame an endpoint sends no more data. A client
// that sends messages and closes at once gets its close answered while the room's
// echoes are still queued for it.
TEST_F(conformance, no_data_frames_after_the_servers_close) {
    for (int round = 0; round < 30; ++round) {
        auto c = open_websocket(port());
        std::string burst;
        for (int i = 0; i < 20; ++i) {
            burst += encode_frame(op_text, "message " + std::to_string(i));
        }
        burst += encode_frame(op_close, close_payload(1000));
        c->send(burst);
        const auto result = finish(*c);
        ASSERT_TRUE(result.close) << "round " << round;
        ASSERT_TRUE(result.after_close.empty())
            << "round " << round << ": " << result.after_close.size()
            << " frames after the close frame, the first of opcode "
            << result.after_close.front().opcode;
    }
}

// A client that breaks the protocol gets the close frame after the echoes of every
// message it sent before (docs/chat.md, Closing), however many were in the same write
// as the bad frame, whichever the error.
TEST_F(conformance, a_protocol_error_closes_after_the_echoes_of_every_earlier_message) {
    const std::pair<const char*, std::string> bad_frames[] = {
        {"binary", encode_frame(op_binary, "b")},
        {"reserved bit", encode_frame(op_text, "x", {.rsv = 4})},
        {"invalid UTF-8", encode_frame(op_text, "\xff")},
    };
    for (const auto& [name, bad] : bad_frames) {
        for (const int count : {2, 5, 50, 200}) {
            auto c = open_websocket(port());
            std::string bytes;
            std::vector<std::string> sent;
            for (int i = 0; i < count; ++i) {
                sent.push_back("message " + std::to_string(i));
                bytes += encode_frame(op_text, sent.back());
            }
            c->send(bytes + bad);
            const auto result = finish(*c);
            ASSERT_TRUE(result.close) << name << ", " << count << " messages before it";
            EXPECT_EQ(result.messages, sent) << name << ": " << result.messages.size()
                                             << " echoes of " << count << " before the close frame";
        }
    }
}

// RFC 6455 §7.1.1: the close frame must reach the client, and the TCP connection end
// cleanly (FIN, not a reset that discards it), even with input still unread.
TEST(conformance_close, the_close_frame_reaches_a_client_with_unread_input) {
    chat_process chat;  // default limit: 65536 bytes
    for (int round = 0; round < 10; ++round) {
        auto c = open_websocket(chat.port());
        c->send(encode_frame(op_text, std::string(65536, 'a')) +
                encode_frame(op_text, std::string(100 * 1000, 'b')));
        const auto result = finish(*c);
        ASSERT_EQ(result.messages.size(), 1u)
            << "round " << round << ", ended by " << to_string(result.end);
        EXPECT_EQ(result.messages[0].size(), 65536u) << "round " << round;
        ASSERT_TRUE(result.close) << "round " << round << ", ended by " << to_string(result.end);
        EXPECT_EQ(result.close_code(), 1009u);
        EXPECT_EQ(result.end, ending::eof) << "round " << round;
    }
}

// --- Keep-alive ----------------------------------------------------------------------

// A client silent for half the idle timeout is pinged; one that answers stays, one
// that stays silent is dropped after the whole timeout.
TEST(conformance_idle, silent_clients_are_pinged_then_dropped_and_pongs_keep_them) {
    chat_process chat({.args = {"--idle-timeout", "2"}});
    auto answering = open_websocket(chat.port());
    auto silent = open_websocket(chat.port());
    const auto start = clock::now();
    const auto answer_ping = [&] {
        const auto f = answering->read_frame(5000ms);
        ASSERT_TRUE(f);
        ASSERT_EQ(f->opcode, op_ping);
        answering->send_frame(op_pong, f->payload);
    };
    answer_ping();
    EXPECT_GE(clock::now() - start, 900ms);  // half the timeout, less a sweep's slack
    const auto ping = silent->read_frame(5000ms);
    ASSERT_TRUE(ping);
    EXPECT_EQ(ping->opcode, op_ping);
    EXPECT_EQ(silent->read_to_end(5000ms), ending::eof);
    EXPECT_GE(clock::now() - start, 1900ms);
    // The other one answered its ping: it is pinged again, not dropped.
    answer_ping();
    answering->send_frame(op_text, "still here");
    const auto frames = until_text(*answering);
    ASSERT_FALSE(frames.empty());
    EXPECT_EQ(frames.back().payload, "still here");
}

// --- Size limits (RFC 6455 §5.2, §7.4.1) -------------------------------------------

TEST_F(conformance, messages_up_to_the_limit_pass_and_larger_ones_close_with_1009) {
    auto c = open_websocket(port());
    c->send_frame(op_text, std::string(1024, 'm'));
    const auto frames = until_text(*c);
    ASSERT_EQ(frames.size(), 1u);
    EXPECT_EQ(frames[0].payload.size(), 1024u);

    EXPECT_EQ(close_code_for(port(), encode_frame(op_text, std::string(1025, 'm'))), 1009u);
    // The limit is on the message, not the frame.
    EXPECT_EQ(close_code_for(port(), encode_frame(op_text, std::string(600, 'm'), {.fin = false}) +
                                         encode_frame(op_continuation, std::string(600, 'm'))),
              1009u);
    // A length announced far beyond the limit closes before any payload.
    EXPECT_EQ(close_code_for(port(), encode_frame(op_text, "", {.declared_length = 1ull << 40})),
              1009u);
}

// RFC 6455 §5.2: "the most significant bit MUST be 0".
TEST_F(conformance, a_64_bit_length_with_the_top_bit_set_fails_with_1002) {
    EXPECT_EQ(close_code_for(port(),
                             encode_frame(op_text, "", {.declared_length = 0x8000000000000005ull})),
              1002u);
    EXPECT_EQ(close_code_for(port(), encode_frame(op_text, "", {.declared_length = ~0ull})), 1002u);
}

// --- Random frames -----------------------------------------------------------------

// Bytes a hostile or broken client might send: mostly frames (valid or slightly wrong),
// sometimes garbage, sometimes cut short.
class frame_fuzzer {
  public:
    explicit frame_fuzzer(std::uint64_t seed) : random_(seed) {}

    std::string connection_bytes() {
        std::string out;
        const int frames = pick(1, 6);
        for (int i = 0; i < frames; ++i) {
            out += one_frame();
        }
        if (chance(10)) {
            out.resize(pick(0, static_cast<int>(out.size())));  // cut short
        }
        return out;
    }

  private:
    std::string one_frame() {
        if (chance(5)) {
            return random_bytes(pick(1, 40));
        }
        static constexpr unsigned opcodes[] = {op_text,   op_text,  op_text, op_continuation,
                                               op_binary, op_close, op_ping, op_pong,
                                               3,         0xb};
        const unsigned opcode = opcodes[pick(0, std::size(opcodes) - 1)];
        frame_options options;
        options.fin = !chance(25);
        options.rsv = chance(5) ? pick(1, 7) : 0;
        options.mask = !chance(5);
        options.mask_key = static_cast<std::uint32_t>(random_());
        if (chance(5)) {
            options.form = chance(50) ? length_form::bits16 : length_form::bits64;
        }
        std::string payload;
        if (opcode == op_close && chance(80)) {
            static constexpr unsigned codes[] = {1000, 1001, 1002, 1005, 1006,  1011,
                                                 2999, 3000, 4999, 5000, 65535, 0};
            payload = close_payload(codes[pick(0, std::size(codes) - 1)], text(pick(0, 20)));
        } else {
            const int size = chance(10) ? pick(126, 2000) : pick(0, 130);
            payload = chance(70) ? text(size) : random_bytes(size);
        }
        if (chance(3)) {
            options.declared_length = chance(50) ? random_() : pick(0, 70000);
        }
        return encode_frame(opcode, payload, options);
    }

    std::string text(int size) {
        static const std::vector<std::string> pieces = {
            "a", "hello ", "\xce\xba", "\xe2\x82\xac", "\xf0\x9f\x98\x80", "\xc0", "\xed\xa0\x80"};
        std::string out;
        while (static_cast<int>(out.size()) < size) {
            out += chance(97) ? pieces[pick(0, 4)] : pieces[pick(0, pieces.size() - 1)];
        }
        return out;
    }

    std::string random_bytes(int size) {
        std::string out(size, '\0');
        for (auto& c : out) {
            c = static_cast<char>(random_() & 0xff);
        }
        return out;
    }

    int pick(int low, int high) { return std::uniform_int_distribution<int>(low, high)(random_); }
    int pick(int low, std::size_t high) { return pick(low, static_cast<int>(high)); }
    bool chance(int percent) { return pick(0, 99) < percent; }

    std::mt19937_64 random_;
};

std::uint64_t env_number(const char* name, std::uint64_t fallback) {
    const char* value = std::getenv(name);
    return value && *value ? std::stoull(value) : fallback;
}

// Close codes a server may send (RFC 6455 §7.4.1): not 1004-1006, 1015 or above 4999.
bool sendable_close_code(unsigned code) {
    static const std::set<unsigned> codes = {1000, 1001, 1002, 1003, 1005 /* empty */,
                                             1007, 1008, 1009, 1010, 1011};
    return codes.count(code) > 0 || (code >= 3000 && code <= 4999);
}

// Replay one case: BROADCASTER_WS_FUZZ_SEED=S BROADCASTER_WS_FUZZ_FIRST=I
// BROADCASTER_WS_FUZZ_CONNECTIONS=1.
TEST(conformance_fuzz, seeded_random_frames_neither_crash_nor_grow_the_server) {
    const auto seed = env_number("BROADCASTER_WS_FUZZ_SEED", std::random_device{}());
    const auto connections = env_number("BROADCASTER_WS_FUZZ_CONNECTIONS", 4000);
    const auto first = env_number("BROADCASTER_WS_FUZZ_FIRST", 0);
    std::cout << "fuzz seed " << seed << " (replay: BROADCASTER_WS_FUZZ_SEED=" << seed << ")\n";
    RecordProperty("seed", std::to_string(seed));
    chat_process chat({.args = {"--max-message-bytes", "4096"}});
    // In the room throughout, reading everything the fuzzer's valid messages send it.
    auto bystander = open_websocket(chat.port());
    std::atomic<bool> bystander_done{false};
    std::thread drain([&] {
        while (auto f = bystander->read_frame(120000ms)) {
            if (f->opcode == op_text && f->payload == "end of fuzz") {
                bystander_done = true;
                return;
            }
        }
    });
    struct join_drain {
        raw_client& client;
        std::thread& thread;
        ~join_drain() {
            ::shutdown(client.fd(), SHUT_RDWR);  // ends its read if the test stops early
            thread.join();
        }
    } joiner{*bystander, drain};

    long warm_rss = 0;
    for (std::uint64_t i = first; i < first + connections; ++i) {
        const auto where = "seed " + std::to_string(seed) + ", connection " + std::to_string(i);
        frame_fuzzer fuzzer(seed * 1000003 + i);
        const auto bytes = fuzzer.connection_bytes();
        {
            auto c = open_websocket(chat.port());
            c->send(bytes);
            c->shutdown_write();  // the server sees EOF after the bytes
            std::optional<frame> close;
            std::size_t after_close = 0;
            while (auto f = c->read_frame(5000ms)) {
                ASSERT_FALSE(f->masked) << where;
                ASSERT_EQ(f->rsv, 0u) << where;
                ASSERT_TRUE(f->opcode == op_text || f->opcode == op_pong || f->is_close())
                    << where << ": opcode " << f->opcode;
                if (close) {
                    ++after_close;
                } else if (f->is_close()) {
                    close = f;
                }
            }
            ASSERT_NE(c->ended(), ending::timeout) << where << ": the server did not end it";
            ASSERT_EQ(after_close, 0u) << where << ": frames after the close frame";
            if (close) {
                ASSERT_TRUE(sendable_close_code(close->close_code()))
                    << where << ": close code " << close->close_code();
            }
        }
        ASSERT_TRUE(chat.alive()) << where << ": the server died; bytes " << hex(bytes) << "\n"
                                  << chat.log();
        if (i == first + connections / 10) {
            warm_rss = chat.rss_kib();
        }
    }
    // Everything the fuzzer's connections held is gone, and the room still works.
    ASSERT_TRUE(chat.alive()) << chat.log();
    const auto end_rss = chat.rss_kib();
    std::cout << "RSS after warm-up " << warm_rss << " KiB, at the end " << end_rss << " KiB\n";
    EXPECT_LT(end_rss, warm_rss + 4096) << "the server grew";
    const auto until = clock::now() + 5s;
    while (metric(chat.port(), "chat_clients") != 1 && clock::now() < until) {
        std::this_thread::sleep_for(10ms);
    }
    EXPECT_EQ(metric(chat.port(), "chat_clients"), 1u);
    // The bystander still chats.
    bystander->send_frame(op_text, "end of fuzz");
    const auto deadline = clock::now() + 5s;
    while (!bystander_done && clock::now() < deadline) {
        std::this_thread::sleep_for(5ms);
    }
    EXPECT_TRUE(bystander_done);
}

}  // namespace
}  // namespace broadcaster::test::ws
