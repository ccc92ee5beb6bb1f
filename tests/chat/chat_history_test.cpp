// broadcaster-chat's history: a joining client first gets the room's recent messages;
// a client of the broadcaster.v1 subprotocol gets JSON frames with positions and
// resumes after the last one it saw (?since=), on any instance, with no gap and no
// duplicate, and is told when that is no longer possible.

#include "chat_e2e_support.hpp"
#include "test_servers.hpp"
#ifdef BROADCASTER_WITH_REDIS
#include "../redis/own_redis.hpp"
#endif

#include <broadcaster/blocking_broadcast.hpp>

#include <boost/json/parse.hpp>

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>
#include <thread>

namespace broadcaster::test {
namespace {

namespace websocket = boost::beast::websocket;
namespace http = boost::beast::http;

// A frame of the broadcaster.v1 subprotocol.
struct json_frame {
    std::string position;
    std::string message;
    bool gap = false;
};

json_frame parse_frame(const std::string& text) {
    const auto value = boost::json::parse(text).as_object();
    json_frame frame;
    if (const auto* gap = value.if_contains("gap")) {
        frame.gap = gap->as_bool();
        return frame;
    }
    frame.position = value.at("position").as_string().c_str();
    frame.message = value.at("message").as_string().c_str();
    return frame;
}

// A client that offered broadcaster.v1 and was granted it.
struct json_client : client {
    explicit json_client(unsigned short port, const std::string& target = "/")
        : client(port, target, "broadcaster.v1") {
        EXPECT_EQ(handshake_response[http::field::sec_websocket_protocol], "broadcaster.v1");
    }
    json_frame next() { return parse_frame(receive()); }
};

// Sends each message and reads it back: once it is back, the room has stored it.
void say(client& speaker, const std::vector<std::string>& messages) {
    for (const auto& m : messages) {
        speaker.send(m);
    }
    for (const auto& m : messages) {
        EXPECT_EQ(speaker.receive(), m);
    }
}

std::vector<std::string> numbered(const std::string& prefix, int first, int last) {
    std::vector<std::string> out;
    for (int i = first; i <= last; ++i) {
        out.push_back(prefix + std::to_string(i));
    }
    return out;
}

TEST(chat_history, a_joining_client_gets_the_last_messages_then_live_ones) {
    chat_instance chat("memory://?history=100", {"--history", "3"});
    client alice(chat.port);
    say(alice, numbered("m", 1, 5));
    client bob(chat.port);
    EXPECT_EQ(bob.receive(), "m3");
    EXPECT_EQ(bob.receive(), "m4");
    EXPECT_EQ(bob.receive(), "m5");
    alice.send("live");
    EXPECT_EQ(bob.receive(), "live");
}

// A client joins with history on its own subscriber, then moves to the room's fan-out
// (one subscription for all) at a message both have reached: nothing lost or doubled
// across the move, in a burst too.
TEST(chat_history, clients_that_joined_with_history_move_to_the_room_without_a_gap) {
    chat_instance chat("memory://?history=100", {"--history", "3"});
    client alice(chat.port);
    say(alice, numbered("m", 1, 5));
    client bob(chat.port);
    for (const auto& expected : numbered("m", 3, 5)) {
        ASSERT_EQ(bob.receive(), expected);
    }
    const auto burst = numbered("b", 1, 300);
    for (const auto& m : burst) {
        alice.send(m);
    }
    for (const auto& expected : burst) {
        ASSERT_EQ(alice.receive(), expected);
        ASSERT_EQ(bob.receive(), expected);
    }
    say(alice, {"last"});
    EXPECT_EQ(bob.receive(), "last");
    EXPECT_EQ(metric(chat.port, "broadcast_active_subscribers"), 1u);  // the room's
    client carol(chat.port);  // history, then live, as before
    for (const auto& expected : {"b299", "b300", "last"}) {
        ASSERT_EQ(carol.receive(), expected);
    }
    alice.send("after");
    for (auto* c : {&alice, &bob, &carol}) {
        EXPECT_EQ(c->receive(), "after");
    }
}

TEST(chat_history, a_backend_with_history_gives_the_last_50_by_default) {
    chat_instance chat("memory://?history=1000");
    client alice(chat.port);
    say(alice, numbered("m", 1, 60));
    client bob(chat.port);
    for (const auto& expected : numbered("m", 11, 60)) {
        ASSERT_EQ(bob.receive(), expected);
    }
    alice.send("live");
    EXPECT_EQ(bob.receive(), "live");
}

TEST(chat_history, without_history_a_joining_client_gets_live_messages_only) {
    chat_instance chat("memory://");
    client alice(chat.port);
    say(alice, {"before"});
    client bob(chat.port);
    alice.send("live");
    EXPECT_EQ(bob.receive(), "live");
}

TEST(chat_history, asking_for_history_from_a_backend_without_it_fails_at_start) {
    scratch_dir dir("broadcaster-chat-history");
    const auto log = dir.path() / "chat.log";
    const auto status = run_command(
        {BROADCASTER_CHAT_BINARY, "--port", "0", "--broadcast", "memory://", "--history", "5"},
        log);
    EXPECT_EQ(status, 1);
    std::stringstream text;
    text << std::ifstream(log).rdbuf();
    EXPECT_NE(text.str().find("--history needs a backend that keeps history"), std::string::npos)
        << text.str();
}

TEST(chat_history, a_history_that_would_overflow_the_send_queue_is_a_usage_error) {
    scratch_dir dir("broadcaster-chat-history");
    // 100 messages of 64 KiB do not fit in the 4 MiB send queue.
    EXPECT_EQ(run_command({BROADCASTER_CHAT_BINARY, "--port", "0", "--broadcast",
                           "memory://?history=1000", "--history", "100"},
                          dir.path() / "chat.log"),
              2);
}

TEST(chat_history, a_client_too_far_behind_gets_a_gap_frame_not_everything) {
    chat_instance chat("memory://?history=1000", {"--history", "3"});
    json_client alice(chat.port);
    alice.send("first");
    const auto first = alice.next();
    for (int i = 1; i <= 60; ++i) {
        alice.send("m" + std::to_string(i));
        alice.next();
    }
    // 60 after it: more than a resume replays (50).
    json_client back(chat.port, "/?since=" + first.position);
    EXPECT_TRUE(back.next().gap);
    EXPECT_EQ(back.next().message, "m58");
}

TEST(chat_history, json_frames_carry_each_message_and_its_position) {
    chat_instance chat("memory://?history=100");
    json_client alice(chat.port);
    const std::string tricky = "say \"hi\"\n\\ \t\x01 é ✓";
    alice.send(tricky);
    alice.send("second");
    const auto first = alice.next();
    const auto second = alice.next();
    EXPECT_FALSE(first.gap);
    EXPECT_EQ(first.message, tricky);
    EXPECT_EQ(second.message, "second");
    EXPECT_EQ(first.position, "1");
    EXPECT_EQ(second.position, "2");
    // A client that does not ask for the subprotocol gets plain text.
    client plain(chat.port);
    EXPECT_EQ(plain.handshake_response.count(http::field::sec_websocket_protocol), 0u);
    EXPECT_EQ(plain.receive(), tricky);
}

TEST(chat_history, since_a_position_no_longer_kept_gets_a_gap_frame_then_the_recent_ones) {
    chat_instance chat("memory://?history=5", {"--history", "2"});
    json_client alice(chat.port);
    for (const auto& m : numbered("m", 1, 10)) {
        alice.send(m);
    }
    const auto first = alice.next();
    for (int i = 2; i <= 10; ++i) {
        alice.next();
    }
    json_client back(chat.port, "/?since=" + first.position);
    EXPECT_TRUE(back.next().gap);
    EXPECT_EQ(back.next().message, "m9");
    EXPECT_EQ(back.next().message, "m10");
    // A position the room never gave is a gap too.
    json_client stranger(chat.port, "/?since=999999");
    EXPECT_TRUE(stranger.next().gap);
    EXPECT_EQ(stranger.next().message, "m9");
}

TEST(chat_history, a_malformed_since_is_refused_with_400) {
    chat_instance chat("memory://?history=10");
    const std::vector<std::string> targets{"/?since=", "/?since=1&since=2",
                                           "/?since=" + std::string(300, '1')};
    for (const auto& target : targets) {
        boost::asio::io_context io;
        websocket::stream<boost::asio::ip::tcp::socket> ws(io);
        ws.next_layer().connect({boost::asio::ip::address_v4::loopback(), chat.port});
        websocket::response_type response;
        boost::beast::error_code ec;
        ws.handshake(response, "127.0.0.1", target, ec);
        EXPECT_TRUE(ec) << target;
        EXPECT_EQ(response.result_int(), 400) << target;
    }
}

// A reader leaves after m2; m3 and m4 are said on another instance; the reader comes
// back there with ?since= its last position and gets m3, m4, then live ones.
void expect_resume_on_another_instance(const std::string& url) {
    chat_instance a(url);
    chat_instance b(url);
    std::string last_seen;
    {
        json_client reader(a.port);
        client writer(a.port);
        say(writer, {"m1", "m2"});
        EXPECT_EQ(reader.next().message, "m1");
        const auto second = reader.next();
        EXPECT_EQ(second.message, "m2");
        last_seen = second.position;
    }  // the reader's connection ends: what follows is published while it is away
    client writer(b.port);
    EXPECT_EQ(writer.receive(), "m1");  // the room's history, for a new client
    EXPECT_EQ(writer.receive(), "m2");
    say(writer, {"m3", "m4"});
    json_client reader(b.port, "/?since=" + last_seen);
    EXPECT_EQ(reader.next().message, "m3");
    EXPECT_EQ(reader.next().message, "m4");
    writer.send("m5");
    EXPECT_EQ(reader.next().message, "m5");
}

#ifdef BROADCASTER_WITH_KAFKA
TEST(chat_history, a_client_resumes_after_its_last_position_on_another_instance_on_kafka) {
    kafka_mock cluster;  // its own: the room's history starts empty
    expect_resume_on_another_instance(cluster.url());
}
#endif

#ifdef BROADCASTER_WITH_REDIS
std::string stream_url(unsigned short port) {
    return "redis-stream://127.0.0.1:" + std::to_string(port) +
           "?reconnect_min_ms=20&reconnect_max_ms=200&publish_timeout_ms=20000";
}

TEST(chat_history, a_client_resumes_after_its_last_position_on_another_instance) {
    own_redis redis;
    expect_resume_on_another_instance(stream_url(redis.port));
}

// Another publisher on the room's channel may send any bytes; text frames (and JSON)
// carry UTF-8 only, or a browser drops the connection, and keeps dropping it while
// the message is in the history it resumes from.
TEST(chat_history, bytes_that_are_not_utf8_reach_clients_as_valid_text) {
    own_redis redis;
    chat_instance chat(stream_url(redis.port));
    json_client v1(chat.port);
    client plain(chat.port);
    blocking_broadcast other(stream_url(redis.port));
    other.connect();
    other.publish("chatroom", "bad\xff end");
    const std::string repaired = "bad\xef\xbf\xbd end";
    EXPECT_EQ(v1.next().message, repaired);
    EXPECT_EQ(plain.receive(), repaired);
    json_client joining(chat.port);  // from the history too
    EXPECT_EQ(joining.next().message, repaired);
    // Each message is checked once for all clients: the next ones get their own answer.
    client second(chat.port);
    EXPECT_EQ(second.receive(), repaired);  // from the history
    other.publish("chatroom", "fine");
    other.publish("chatroom", "also\xfe");
    for (auto* c : {&plain, &second}) {
        EXPECT_EQ(c->receive(), "fine");
        EXPECT_EQ(c->receive(), "also\xef\xbf\xbd");
    }
}

// What the chat server's connection to Redis was carrying when Redis died may or may
// not have been stored (it is delivered at most once, and its sender is told): the
// broker goes down first, and messages are sent once the server has noticed.
TEST(chat_history, clients_lose_nothing_when_the_broker_restarts) {
    own_redis redis({"--appendonly", "yes", "--appendfsync", "always"});
    chat_instance chat(stream_url(redis.port));
    json_client reader(chat.port);
    client writer(chat.port);
    say(writer, {"before1", "before2", "before3"});
    for (const auto& m : {"before1", "before2", "before3"}) {
        EXPECT_EQ(reader.next().message, m);
    }
    // Both moved from their own subscribers to the room's by now.
    EXPECT_EQ(metric(chat.port, "broadcast_active_subscribers"), 1u);
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    // Its acknowledgement may trail its delivery: a kill between the two would leave
    // it in doubt.
    while (metric(chat.port, "chat_messages_in_total") < 3) {
        ASSERT_LT(std::chrono::steady_clock::now(), until) << "never acknowledged";
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    redis.server->stop(SIGKILL);
    while (http_get(chat.port, "/healthz").first == 200) {
        ASSERT_LT(std::chrono::steady_clock::now(), until) << "the server never noticed";
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    // Sent while the broker is down: each waits for the connection.
    for (const auto& m : {"after1", "after2", "after3"}) {
        writer.send(m);
    }
    redis.server->start();
    for (const auto& m : {"after1", "after2", "after3"}) {
        EXPECT_EQ(writer.receive(), m);
        EXPECT_EQ(reader.next().message, m);
    }
}
#endif

}  // namespace
}  // namespace broadcaster::test
