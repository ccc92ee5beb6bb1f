// The chat server's small pure parts: request checks (Host, framing, WebSocket key,
// Origin), what an upgrade asks for (subprotocol, since), the JSON frames and the log
// line, the writer's burst rule.

#include "burst_detector.hpp"
#include "join_request.hpp"
#include "json_frames.hpp"
#include "log.hpp"
#include "request_checks.hpp"
#include "text_frame.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>
#include <vector>

namespace chat {
namespace {

// RFC 6455 §5.2: FIN and the text opcode, no mask, the length in the fewest bytes.
TEST(chat_text_frame, the_header_uses_the_shortest_length_encoding) {
    const auto bytes = [](std::uint64_t size) {
        const text_frame_header header(size);
        return std::vector<int>(header.bytes.begin(), header.bytes.begin() + header.size);
    };
    using v = std::vector<int>;
    EXPECT_EQ(bytes(0), (v{0x81, 0}));
    EXPECT_EQ(bytes(125), (v{0x81, 125}));
    EXPECT_EQ(bytes(126), (v{0x81, 126, 0, 126}));
    EXPECT_EQ(bytes(65535), (v{0x81, 126, 0xff, 0xff}));
    EXPECT_EQ(bytes(65536), (v{0x81, 127, 0, 0, 0, 0, 0, 1, 0, 0}));
    EXPECT_EQ(bytes(0x0102030405060708), (v{0x81, 127, 1, 2, 3, 4, 5, 6, 7, 8}));
}

TEST(chat_join_request, the_subprotocol_is_found_in_any_list) {
    using list = std::vector<std::string_view>;
    EXPECT_FALSE(parse_join("/", {}).json_frames);
    EXPECT_TRUE(parse_join("/", list{"broadcaster.v1"}).json_frames);
    EXPECT_TRUE(parse_join("/", list{"chat, broadcaster.v1"}).json_frames);
    EXPECT_TRUE(parse_join("/", list{"chat", " broadcaster.v1 ,x"}).json_frames);
    EXPECT_FALSE(parse_join("/", list{"broadcaster.v10"}).json_frames);
    EXPECT_FALSE(parse_join("/", list{"xbroadcaster.v1"}).json_frames);
}

TEST(chat_join_request, since_is_decoded_and_checked) {
    EXPECT_FALSE(parse_join("/", {}).since);
    EXPECT_EQ(parse_join("/?since=1733140000000-0", {}).since, "1733140000000-0");
    EXPECT_EQ(parse_join("/?since=a%2Fb&other=1", {}).since, "a/b");
    EXPECT_TRUE(parse_join("/?other=1", {}).problem.empty());
    EXPECT_FALSE(parse_join("/?since=", {}).problem.empty());
    EXPECT_FALSE(parse_join("/?since=1&since=2", {}).problem.empty());
    EXPECT_FALSE(
        parse_join("/?since=" + std::string(max_position_bytes + 1, '1'), {}).problem.empty());
    EXPECT_TRUE(parse_join("/?since=" + std::string(max_position_bytes, '1'), {}).problem.empty());
    EXPECT_FALSE(parse_join("/?since=%zz", {}).problem.empty());
    EXPECT_EQ(target_path("/?since=1"), "/");
}

TEST(chat_json_frames, escape_what_json_needs) {
    EXPECT_EQ(message_frame("12-0", "hi"), R"({"position":"12-0","message":"hi"})");
    EXPECT_EQ(message_frame("", "a\"b\\c\n\x01"), R"({"position":"","message":"a\"b\\c\n\u0001"})");
    EXPECT_EQ(gap_frame(), R"({"gap":true})");
    EXPECT_EQ(message_frame("1", "bad\xff"),
              "{\"position\":\"1\",\"message\":\"bad\xef\xbf\xbd\"}");
}

TEST(chat_request_checks, websocket_keys) {
    EXPECT_TRUE(is_valid_websocket_key("dGhlIHNhbXBsZSBub25jZQ=="));
    EXPECT_TRUE(is_valid_websocket_key("AAAAAAAAAAAAAAAAAAAAAA=="));
    EXPECT_TRUE(is_valid_websocket_key("/////////////////////w=="));
    EXPECT_FALSE(is_valid_websocket_key(""));
    EXPECT_FALSE(is_valid_websocket_key("dGhlIHNhbXBsZSBub25jZR=="));  // stray bits
    EXPECT_FALSE(is_valid_websocket_key("dGhlIHNhbXBsZSBub25jZSE="));  // 17 bytes
    EXPECT_FALSE(is_valid_websocket_key("dGhlIHNhbXBsZSBub25jZQ==="));
    EXPECT_FALSE(is_valid_websocket_key("dGhlIHNhbXBsZSBub25jZ-=="));  // base64url
}

TEST(chat_request_checks, hosts) {
    EXPECT_TRUE(is_valid_host(""));
    EXPECT_TRUE(is_valid_host("example.com:8000"));
    EXPECT_TRUE(is_valid_host("[::1]:8000"));
    EXPECT_FALSE(is_valid_host("user@example.com"));
    EXPECT_FALSE(is_valid_host("example.com/path"));
    EXPECT_FALSE(is_valid_host("a b"));
}

TEST(chat_request_checks, framing) {
    using list = std::vector<std::string_view>;
    EXPECT_FALSE(framing_problem({}, false));
    EXPECT_FALSE(framing_problem({}, true));
    EXPECT_FALSE(framing_problem(list{"chunked"}, false));
    EXPECT_FALSE(framing_problem(list{"gzip, Chunked"}, false));
    EXPECT_FALSE(framing_problem(list{"gzip", "chunked"}, false));
    EXPECT_TRUE(framing_problem(list{"chunked"}, true));
    EXPECT_TRUE(framing_problem(list{"xchunked"}, false));
    EXPECT_TRUE(framing_problem(list{"chunked, gzip"}, false));
    EXPECT_TRUE(framing_problem(list{"chunked", "chunked"}, false));
    EXPECT_TRUE(framing_problem(list{""}, false));
}

TEST(chat_request_checks, origins_normalize) {
    EXPECT_EQ(normalize_origin("http://Example.COM"), "http://example.com:80");
    EXPECT_EQ(normalize_origin("https://example.com/"), "https://example.com:443");
    EXPECT_EQ(normalize_origin("http://127.0.0.1:08000"), "http://127.0.0.1:8000");
    EXPECT_EQ(normalize_origin("http://[::1]:9000"), "http://[::1]:9000");
    EXPECT_EQ(normalize_origin("http://[::1]"), "http://[::1]:80");
    EXPECT_FALSE(normalize_origin("null"));
    EXPECT_FALSE(normalize_origin("file://"));
    EXPECT_FALSE(normalize_origin("ftp://example.com"));
    EXPECT_FALSE(normalize_origin("http://example.com/path"));
    EXPECT_FALSE(normalize_origin("http://user@example.com"));
    EXPECT_FALSE(normalize_origin("http://example.com:"));
    EXPECT_FALSE(normalize_origin("http://example.com:65536"));
    EXPECT_FALSE(normalize_origin("http://example.com:0"));
    EXPECT_FALSE(normalize_origin("http://exa]mple.com"));
    EXPECT_FALSE(normalize_origin("example.com"));
}

TEST(chat_request_checks, origins_allowed) {
    const std::vector<std::string> none;
    EXPECT_TRUE(origin_allowed("http://127.0.0.1:8000", "127.0.0.1:8000", none));
    EXPECT_TRUE(origin_allowed("http://chat.example", "chat.example", none));
    EXPECT_TRUE(origin_allowed("https://chat.example", "chat.example", none));  // behind TLS
    EXPECT_TRUE(origin_allowed("https://chat.example", "chat.example:443", none));
    EXPECT_FALSE(origin_allowed("http://chat.example", "chat.example:8000", none));
    EXPECT_FALSE(origin_allowed("http://evil.example", "chat.example", none));
    EXPECT_FALSE(origin_allowed("http://127.0.0.1:8001", "127.0.0.1:8000", none));
    EXPECT_FALSE(origin_allowed("null", "127.0.0.1:8000", none));
    EXPECT_FALSE(origin_allowed("http://127.0.0.1:8000", "", none));

    const std::vector<std::string> listed = {"https://app.example:443"};
    EXPECT_TRUE(origin_allowed("https://APP.example", "chat.example", listed));
    EXPECT_FALSE(origin_allowed("http://app.example", "chat.example", listed));
    const std::vector<std::string> any = {"*"};
    EXPECT_TRUE(origin_allowed("null", "chat.example", any));
}

TEST(chat_log, control_characters_stay_on_one_line) {
    const auto line = format_log_line("a\nb\rc\x1b", 0);
    EXPECT_EQ(line, "1970-01-01T00:00:00Z broadcaster-chat: a?b?c?\n");
}

// Several threads logging at once (--threads N): every line comes out whole.
TEST(chat_log, lines_stay_whole_when_threads_log_at_once) {
    const auto path = std::filesystem::temp_directory_path() /
                      ("broadcaster-chat-log-" + std::to_string(::getpid()));
    const int file = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ASSERT_GE(file, 0);
    const int saved = ::dup(STDERR_FILENO);
    ::dup2(file, STDERR_FILENO);
    constexpr int threads = 8;
    constexpr int lines = 500;
    std::vector<std::thread> loggers;
    for (int t = 0; t < threads; ++t) {
        loggers.emplace_back([t] {
            for (int i = 0; i < lines; ++i) {
                chat::log("thread " + std::to_string(t) + " line " + std::to_string(i) + " " +
                          std::string(100 + (i % 7) * 50, static_cast<char>('a' + t)));
            }
        });
    }
    for (auto& l : loggers) {
        l.join();
    }
    ::dup2(saved, STDERR_FILENO);
    ::close(saved);
    ::close(file);

    std::ifstream in(path);
    std::string line;
    int count = 0;
    while (std::getline(in, line)) {
        ++count;
        std::istringstream fields(line);
        std::string stamp, name, word, number_text, padding;
        int t = -1, i = -1;
        fields >> stamp >> name >> word >> t >> word >> i >> padding;
        ASSERT_EQ(name, "broadcaster-chat:") << line;
        ASSERT_TRUE(t >= 0 && t < threads) << line;
        ASSERT_EQ(padding, std::string(100 + (i % 7) * 50, static_cast<char>('a' + t))) << line;
    }
    std::filesystem::remove(path);
    EXPECT_EQ(count, threads * lines);
}

// A run of short gaps is a burst; one short gap, as a steady rate has at random, is not.
TEST(chat_burst_detector, a_run_of_short_gaps_is_a_burst_and_one_is_not) {
    using namespace std::chrono_literals;
    burst_detector<1000, 3> bursts;
    auto now = std::chrono::steady_clock::now();
    EXPECT_FALSE(bursts.message_at(now));
    EXPECT_FALSE(bursts.message_at(now += 200us));  // one short gap
    EXPECT_FALSE(bursts.message_at(now += 5ms));
    EXPECT_FALSE(bursts.message_at(now += 100us));
    EXPECT_FALSE(bursts.message_at(now += 100us));  // two in a row
    EXPECT_TRUE(bursts.message_at(now += 100us));   // three: a burst
    for (int i = 0; i < 1000; ++i) {
        EXPECT_TRUE(bursts.message_at(now += 10us));  // it lasts, however long
    }
    EXPECT_FALSE(bursts.message_at(now += 1ms));  // a gap as long as the bound ends it
    EXPECT_FALSE(bursts.message_at(now += 999us));
}

// At a steady 500 messages a second, as many gaps are short as chance makes (39% under
// 1 ms): the old rule (one short gap) made two messages in five wait; a run of three
// makes few.
TEST(chat_burst_detector, a_steady_rate_is_rarely_a_burst) {
    using namespace std::chrono_literals;
    burst_detector<1000, 3> bursts;
    std::mt19937 random(17);
    std::exponential_distribution<double> gap_ms(0.5);  // 500 a second
    auto now = std::chrono::steady_clock::now();
    int burst = 0;
    constexpr int messages = 100000;
    for (int i = 0; i < messages; ++i) {
        now += std::chrono::duration_cast<std::chrono::steady_clock::duration>(
            std::chrono::duration<double, std::milli>(gap_ms(random)));
        burst += bursts.message_at(now) ? 1 : 0;
    }
    EXPECT_LT(burst, messages / 10);  // 0.39^3, about 6%
    EXPECT_GT(burst, messages / 50);  // and it still sees the runs there are
}

}  // namespace
}  // namespace chat
