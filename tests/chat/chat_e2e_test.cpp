// End-to-end tests of broadcaster-chat: the real binary, started on free ports, driven
// by WebSocket and HTTP clients (Beast, synchronous) over loopback.

#include "chat_e2e_support.hpp"
#include "raw_websocket.hpp"
#include "test_servers.hpp"
#ifdef BROADCASTER_WITH_REDIS
#include "redis_cluster.hpp"
#endif

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>

#include <gtest/gtest.h>

#include <atomic>
#include <fstream>
#include <numeric>
#include <optional>
#include <thread>
#include <vector>

namespace broadcaster::test {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;
using namespace std::chrono_literals;

// Sends raw bytes and returns what the server answered before closing.
std::string raw_exchange(unsigned short port, const std::string& bytes) {
    asio::io_context io;
    tcp::socket socket(io);
    socket.connect({asio::ip::address_v4::loopback(), port});
    if (!bytes.empty()) {
        asio::write(socket, asio::buffer(bytes));
    }
    std::string answer;
    beast::error_code ec;
    char chunk[4096];
    while (!ec) {
        const auto n = socket.read_some(asio::buffer(chunk), ec);
        answer.append(chunk, n);
    }
    return answer;
}

TEST(chat, serves_the_page_health_and_metrics) {
    chat_instance chat("memory://");
    const auto [status, page] = http_get(chat.port, "/");
    EXPECT_EQ(status, 200);
    EXPECT_NE(page.find("<title>broadcaster chat</title>"), std::string::npos);
    const auto [health_status, health] = http_get(chat.port, "/healthz");
    EXPECT_EQ(health_status, 200);
    EXPECT_NE(health.find("\"backend\":\"connected\""), std::string::npos) << health;
    EXPECT_EQ(metric(chat.port, "chat_clients"), 0u);
    EXPECT_EQ(http_get(chat.port, "/nothing-here").first, 404);
}

TEST(chat, every_client_receives_every_message_on_memory) {
    chat_instance chat("memory://");
    client alice(chat.port);
    client bob(chat.port);
    alice.send("hello from alice");
    EXPECT_EQ(alice.receive(), "hello from alice");  // the sender too
    EXPECT_EQ(bob.receive(), "hello from alice");
    EXPECT_EQ(metric(chat.port, "chat_clients"), 2u);
}

// A burst reaches every client whole and in order; the server sends queued messages
// several frames per write, so this also checks the frames stay intact.
TEST(chat, a_burst_arrives_complete_and_in_order) {
    chat_instance chat("memory://");
    client sender(chat.port);
    client reader(chat.port);
    constexpr int count = 1000;
    for (int i = 0; i < count; ++i) {
        sender.send("burst " + std::to_string(i) + std::string(i % 200, '.'));
    }
    for (int i = 0; i < count; ++i) {
        const auto expected = "burst " + std::to_string(i) + std::string(i % 200, '.');
        ASSERT_EQ(reader.receive(), expected);
        ASSERT_EQ(sender.receive(), expected);
    }
    EXPECT_EQ(metric(chat.port, "chat_messages_out_total"), 2u * count);
    // One subscription of the room's fan-out for both clients.
    EXPECT_EQ(metric(chat.port, "broadcast_active_subscribers"), 1u);
}

// With several threads each client subscribes on its own (no room fan-out): the same
// messages, in the same order.
TEST(chat, with_several_threads_every_client_receives_a_burst_in_order) {
    chat_instance chat("memory://", {"--threads", "2"});
    client sender(chat.port);
    client reader(chat.port);
    constexpr int count = 500;
    for (int i = 0; i < count; ++i) {
        sender.send("burst " + std::to_string(i));
    }
    for (int i = 0; i < count; ++i) {
        ASSERT_EQ(reader.receive(), "burst " + std::to_string(i));
        ASSERT_EQ(sender.receive(), "burst " + std::to_string(i));
    }
    EXPECT_EQ(metric(chat.port, "broadcast_active_subscribers"), 2u);
}

// Two instances on one broker URL: a message sent to one reaches clients of both.
void expect_one_room(const std::string& url) {
    chat_instance first(url);
    chat_instance second(url);
    client on_first(first.port);
    client on_second(second.port);
    // The server subscribes before accepting, so both clients are in the room now.
    on_first.send("across instances");
    EXPECT_EQ(on_first.receive(), "across instances");
    EXPECT_EQ(on_second.receive(), "across instances");
    on_second.send("and back");
    EXPECT_EQ(on_first.receive(), "and back");
    EXPECT_EQ(on_second.receive(), "and back");
    // A client's messages are published without waiting for each other: their order
    // must survive the broker.
    constexpr int count = 200;
    for (int i = 0; i < count; ++i) {
        on_first.send("burst " + std::to_string(i));
    }
    for (int i = 0; i < count; ++i) {
        ASSERT_EQ(on_second.receive(), "burst " + std::to_string(i));
    }
}

#ifdef BROADCASTER_WITH_REDIS
TEST(chat, two_instances_on_redis_form_one_room) {
    expect_one_room(redis_test_url());
}
#endif

#ifdef BROADCASTER_WITH_REDIS
TEST(chat, two_instances_on_redis_cluster_form_one_room) {
    expect_one_room(redis_cluster_test_url());
}
#endif

#ifdef BROADCASTER_WITH_POSTGRES
TEST(chat, two_instances_on_postgres_form_one_room) {
    expect_one_room(postgres_test_url());
}
#endif

#ifdef BROADCASTER_WITH_NATS
TEST(chat, two_instances_on_nats_form_one_room) {
    expect_one_room(nats_test_url());
}
#endif

#ifdef BROADCASTER_WITH_KAFKA
TEST(chat, two_instances_on_kafka_form_one_room) {
    expect_one_room(kafka_test_url());
}
#endif

#ifdef BROADCASTER_WITH_KAFKA
// A message the chat accepts but the backend cannot carry (over the producer's
// message.max.bytes here) closes only its sender, with the backend's reason.
TEST(chat, a_message_the_backend_refuses_closes_only_its_sender) {
    auto url = kafka_test_url();
    url += url.find('?') == std::string::npos ? "?" : "&";
    chat_instance chat(url + "producer.message.max.bytes=1000");
    client bystander(chat.port);
    client sender(chat.port);
    sender.send(std::string(4000, 'x'));
    EXPECT_EQ(sender.close_code(), websocket::close_code::too_big);
    const std::string reason(sender.ws.reason().reason.data(), sender.ws.reason().reason.size());
    EXPECT_NE(reason.find("message refused"), std::string::npos) << reason;

    bystander.send("still fine");
    EXPECT_EQ(bystander.receive(), "still fine");
    EXPECT_EQ(metric(chat.port, "chat_publish_failures_total"), 1u);
}
#endif

TEST(chat, oversized_and_binary_frames_close_only_that_client) {
    chat_instance chat("memory://", {"--max-message-bytes", "1024"});
    client bystander(chat.port);
    client big(chat.port);
    big.send(std::string(2048, 'x'));
    EXPECT_EQ(big.close_code(), websocket::close_code::too_big);

    client binary(chat.port);
    binary.ws.binary(true);
    binary.ws.write(asio::buffer(std::string("\x01\x02", 2)));
    EXPECT_EQ(binary.close_code(), websocket::close_code::unknown_data);

    bystander.send("still fine");
    EXPECT_EQ(bystander.receive(), "still fine");
    EXPECT_EQ(metric(chat.port, "chat_oversized_frames_total"), 1u);
    EXPECT_EQ(metric(chat.port, "chat_binary_frames_total"), 1u);
}

// Beast's own frames (pongs, the closing handshake) share the write buffer with the
// room's messages.
TEST(chat, pings_are_answered_and_a_client_close_is_echoed) {
    chat_instance chat("memory://");
    client c(chat.port);
    bool ponged = false;
    c.ws.control_callback([&](websocket::frame_type kind, beast::string_view payload) {
        ponged = ponged || (kind == websocket::frame_type::pong && payload == "there?");
    });
    c.ws.ping("there?");
    c.send("after the ping");
    EXPECT_EQ(c.receive(), "after the ping");
    EXPECT_TRUE(ponged);
    beast::error_code ec;
    c.ws.close(websocket::close_code::normal, ec);  // waits for the server's close frame
    EXPECT_FALSE(ec) << ec.message();
    EXPECT_EQ(c.ws.reason().code, websocket::close_code::normal);
}

TEST(chat, malformed_http_gets_400) {
    chat_instance chat("memory://");
    const auto answer = raw_exchange(chat.port, "THIS IS NOT HTTP\r\n\r\n");
    EXPECT_EQ(answer.rfind("HTTP/1.1 400", 0), 0u) << answer;
    EXPECT_EQ(metric(chat.port, "chat_bad_requests_total"), 1u);
}

TEST(chat, abandoned_handshakes_time_out) {
    chat_instance chat("memory://", {"--handshake-timeout", "1"});
    const auto started = std::chrono::steady_clock::now();
    const auto answer = raw_exchange(chat.port, "GET / HTTP/1.1\r\nHost: x\r\n");  // never ends
    EXPECT_TRUE(answer.empty()) << answer;
    EXPECT_LT(std::chrono::steady_clock::now() - started, 5s);
    client after(chat.port);  // the server is fine
    after.send("ok");
    EXPECT_EQ(after.receive(), "ok");
}

// The stalled client is dropped because its socket stopped draining; the reader
// thread, however far behind it falls on a busy machine, keeps draining and stays.
// (The queue is larger than all the traffic: only the stall rule can drop anyone.)
TEST(chat, a_client_that_stops_reading_is_disconnected_and_slows_nobody) {
    chat_instance chat("memory://",
                       {"--client-queue-bytes", "67108864", "--slow-client-timeout", "2"});
    client stalled(chat.port);  // never reads
    client fast(chat.port);
    constexpr int count = 3000;
    const std::string payload(4096, 'p');
    std::thread reader([&] {
        for (int i = 0; i < count; ++i) {
            ASSERT_EQ(fast.receive().size(), payload.size());
        }
    });
    client sender(chat.port);
    std::thread drain_sender([&] {
        for (int i = 0; i < count; ++i) {
            sender.receive();
        }
    });
    for (int i = 0; i < count; ++i) {
        sender.send(payload);
    }
    reader.join();
    drain_sender.join();
    // 12 MB went by; the stalled client's socket buffers hold far less.
    const auto until = std::chrono::steady_clock::now() + 10s;
    while (metric(chat.port, "chat_slow_client_disconnects_total") == 0 &&
           std::chrono::steady_clock::now() < until) {
        std::this_thread::sleep_for(20ms);
    }
    EXPECT_EQ(metric(chat.port, "chat_slow_client_disconnects_total"), 1u);
    EXPECT_EQ(metric(chat.port, "chat_clients"), 2u);
}

// At a steady rate each message goes out in the room's fan-out, every client's send in
// one submission: a client that stopped reading fills its socket there, is not waited
// for, and is dropped by the stall rule; the others get every message.
TEST(chat, a_client_that_stops_reading_at_a_steady_rate_is_dropped_and_slows_nobody) {
    chat_instance chat("memory://",
                       {"--client-queue-bytes", "67108864", "--slow-client-timeout", "1"});
    client stalled(chat.port);  // never reads
    client reader(chat.port);
    client sender(chat.port);
    const std::string payload(60 * 1024, 's');
    const auto until = std::chrono::steady_clock::now() + 60s;
    int sent = 0;
    // One at a time, each back before the next: no burst, the writers wait in the room.
    while (metric(chat.port, "chat_slow_client_disconnects_total") == 0) {
        ASSERT_LT(std::chrono::steady_clock::now(), until) << "the stalled client stayed";
        sender.send(payload + std::to_string(sent));
        ASSERT_EQ(sender.receive(), payload + std::to_string(sent));
        ASSERT_EQ(reader.receive(), payload + std::to_string(sent));
        ++sent;
        if (sent % 64 == 0) {
            std::this_thread::sleep_for(50ms);  // the stall rule's clock runs
        }
    }
    EXPECT_EQ(metric(chat.port, "chat_clients"), 2u);
    sender.send("after");
    EXPECT_EQ(reader.receive(), "after");
}

// A client closed because its send queue overflowed first gets every message queued for
// it before the overflow: the last one too, when it is the only one left after the
// writer's last full batch (64 frames). Fillers stall its writer; 65 numbered messages
// queue behind them; one big message overflows its queue's byte bound.
TEST(chat, a_client_closed_for_overflow_first_gets_the_last_message_queued_before) {
    constexpr std::size_t queue_bytes = 16 << 20;
    chat_instance chat("memory://",
                       {"--client-queue-bytes", std::to_string(queue_bytes), "--max-message-bytes",
                        std::to_string(queue_bytes), "--slow-client-timeout", "60"});
    raw_websocket slow(chat.port, 4096);  // reads nothing until the end
    raw_websocket sender(chat.port);
    // The kernel's buffers take a few fillers, then the slow client's writer waits; the
    // rest queue, then the numbered ones.
    constexpr int fillers = 12;
    constexpr int numbered = 65;
    const std::string overflow(queue_bytes, 'o');  // fits only an empty queue
    // The sender reads its echoes: once the big one is back, the fan-out has handed it
    // to every seat.
    std::thread drain([&] {
        while (auto frame = sender.read_frame()) {
            if (frame->opcode == ws_close || frame->payload.size() == overflow.size()) {
                return;
            }
        }
    });
    for (int i = 0; i < fillers; ++i) {
        sender.send(ws_client_frame(ws_text, "filler " + std::string(1 << 20, 'f')));
    }
    for (int i = 0; i < numbered; ++i) {
        sender.send(ws_client_frame(ws_text, "n" + std::to_string(i)));
    }
    sender.send(ws_client_frame(ws_text, overflow));
    drain.join();
    int fillers_received = 0;
    std::vector<int> received;
    std::optional<ws_frame> frame;
    while ((frame = slow.read_frame()) && !(frame->opcode == ws_close)) {
        if (frame->payload.rfind("filler ", 0) == 0) {
            ++fillers_received;
        } else if (frame->payload.rfind("n", 0) == 0) {
            received.push_back(std::stoi(frame->payload.substr(1)));
        }
    }
    ASSERT_TRUE(frame);
    EXPECT_EQ(frame->close_code(), 1008u);
    EXPECT_EQ(fillers_received, fillers);
    EXPECT_EQ(received.size(), std::size_t{numbered});
    std::vector<int> expected(numbered);
    std::iota(expected.begin(), expected.end(), 0);
    EXPECT_EQ(received, expected);
}

// The server's resident memory (VmRSS), in KiB.
std::size_t resident_kib(pid_t pid) {
    std::ifstream status("/proc/" + std::to_string(pid) + "/status");
    std::string line;
    while (std::getline(status, line)) {
        if (line.rfind("VmRSS:", 0) == 0) {
            return std::stoull(line.substr(6));
        }
    }
    throw std::runtime_error("no VmRSS");
}

// Pongs a client makes the server write count against its bound like messages: a
// client that pings as fast as it can and never reads is no longer read once its
// backlog is full, then dropped when its socket has taken nothing for the stall
// timeout. The server's memory stays put; others are served meanwhile.
TEST(chat, a_ping_flood_from_a_client_that_never_reads_is_bounded_and_dropped) {
    constexpr std::size_t rss_bound_kib = 48 * 1024;  // stated in docs/chat.md
    chat_instance chat("memory://", {"--slow-client-timeout", "1"});
    client bystander(chat.port);
    raw_websocket flooder(chat.port, 16 * 1024);
    std::string pings;
    for (int i = 0; i < 100; ++i) {
        pings += ws_client_frame(ws_ping, std::string(125, 'p'));
    }
    std::atomic<bool> stop{false};
    std::atomic<bool> dropped{false};
    std::thread flood([&] {
        boost::system::error_code ec;
        while (!ec && !stop) {
            flooder.send(pings, ec);
        }
        dropped = ec && !stop;
    });
    std::size_t peak = 0;
    bool served = true;
    const auto until = std::chrono::steady_clock::now() + 20s;
    while (!dropped && served && peak < rss_bound_kib && std::chrono::steady_clock::now() < until) {
        peak = std::max(peak, resident_kib(chat.process.pid()));
        bystander.send("still served");
        served = bystander.receive() == "still served";
        std::this_thread::sleep_for(20ms);
    }
    EXPECT_TRUE(served);
    stop = true;
    if (!dropped) {
        flooder.socket().shutdown(tcp::socket::shutdown_both);  // unblocks the flood
    }
    flood.join();
    EXPECT_TRUE(dropped);
    EXPECT_LT(peak, rss_bound_kib);
    EXPECT_EQ(metric(chat.port, "chat_slow_client_disconnects_total"), 1u);
    bystander.send("after");
    EXPECT_EQ(bystander.receive(), "after");
    RecordProperty("peak_rss_kib", std::to_string(peak));
}

// A client closing while the room's messages are flowing to it (another client sends
// bursts): once the server's close frame is written, nothing may follow it (RFC 6455
// section 5.5.1), even when the writer was waiting for a flush as the close came.
TEST(chat, no_data_frame_follows_the_close_frame) {
    chat_instance chat("memory://");
    raw_websocket flooder(chat.port);  // its echoes stay in its socket buffers
    std::string burst;
    for (int i = 0; i < 500; ++i) {
        burst += ws_client_frame(ws_text, std::string(50, 'm'));
    }
    for (int round = 0; round < 50; ++round) {
        raw_websocket c(chat.port);
        flooder.send(burst);
        c.send(ws_close_frame(1000));
        int data_after_close = 0;
        bool closed = false;
        while (auto frame = c.read_frame()) {
            if (closed) {
                ++data_after_close;
            }
            closed = closed || frame->opcode == ws_close;
        }
        ASSERT_TRUE(closed) << "round " << round;
        ASSERT_EQ(data_after_close, 0) << "round " << round;
        ASSERT_EQ(c.leftover(), 0u) << "round " << round;
    }
}

// A message at the limit followed at once by one over it: the client gets the echoes
// it is sent, whole, then the close frame with 1009, then a clean end of the
// connection, not a reset that would discard them (RFC 6455 sections 7.1.1, 7.1.7).
TEST(chat, the_close_frame_reaches_a_client_that_sent_too_much) {
    chat_instance chat("memory://");
    const std::string at_limit(65536, 'a');
    const std::string bytes =
        ws_client_frame(ws_text, at_limit) + ws_client_frame(ws_text, std::string(100000, 'b'));
    for (int round = 0; round < 20; ++round) {
        // A small receive buffer: the echo is still going out when the server closes.
        raw_websocket c(chat.port, 4096);
        c.send(bytes);
        std::optional<ws_frame> close;
        std::string message;  // the server may send an echo in fragments
        while (auto frame = c.read_frame()) {
            if (frame->opcode == ws_close) {
                close = frame;
                continue;
            }
            ASSERT_FALSE(close) << "round " << round;
            ASSERT_EQ(frame->opcode, message.empty() ? ws_text : 0u) << "round " << round;
            message += frame->payload;
            if (frame->fin) {
                ASSERT_EQ(message, at_limit) << "round " << round;
                message.clear();
            }
        }
        ASSERT_TRUE(message.empty()) << "round " << round << ": an echo cut short";
        ASSERT_TRUE(close) << "round " << round << ": " << c.end().message();
        EXPECT_EQ(close->close_code(), 1009u) << "round " << round;
        ASSERT_EQ(c.end(), asio::error::eof) << "round " << round << ": " << c.end().message();
    }
}

// What a client sends back to a close frame of its own, or how the server fails it.
unsigned close_code_after(unsigned short port, const std::string& bytes) {
    raw_websocket c(port);
    c.send(bytes);
    while (auto frame = c.read_frame()) {
        if (frame->opcode == ws_close) {
            return frame->close_code();
        }
    }
    return 0;
}

// RFC 6455 section 7.4.2: close codes end at 4999; section 5.2: the most significant
// bit of a 64-bit payload length must be 0. Both are protocol errors (1002).
TEST(chat, out_of_range_close_codes_and_lengths_fail_with_1002) {
    chat_instance chat("memory://");
    EXPECT_EQ(close_code_after(chat.port, ws_close_frame(1000)), 1000u);
    EXPECT_EQ(close_code_after(chat.port, ws_close_frame(4999)), 4999u);
    for (unsigned code : {5000u, 6000u, 65535u}) {
        EXPECT_EQ(close_code_after(chat.port, ws_close_frame(code)), 1002u) << code;
    }
    // A text frame whose length is 2^63 + 5, masked, with a little payload.
    std::string huge("\x81\xff\x80\x00\x00\x00\x00\x00\x00\x05\x01\x02\x03\x04hello", 19);
    EXPECT_EQ(close_code_after(chat.port, huge), 1002u);
    // Split across writes, the checks still apply.
    raw_websocket split(chat.port);
    const auto frame = ws_close_frame(5000);
    for (char byte : frame) {
        split.send(std::string(1, byte));
        std::this_thread::sleep_for(2ms);
    }
    std::optional<ws_frame> answer;
    while ((answer = split.read_frame()) && answer->opcode != ws_close) {
    }
    ASSERT_TRUE(answer);
    EXPECT_EQ(answer->close_code(), 1002u);
    client after(chat.port);
    after.send("fine");
    EXPECT_EQ(after.receive(), "fine");
}

// One client writes 1000 small messages at once, 20 times; every reader of every
// instance gets all of them, in order, and none is taken for slow: a backend handing
// a whole batch to the client queues before any writer runs is not a slow client.
void expect_bursts_reach_every_reader(const std::string& url, int instances) {
    std::vector<std::unique_ptr<chat_instance>> chats;
    std::vector<std::unique_ptr<client>> readers;
    for (int i = 0; i < instances; ++i) {
        chats.push_back(std::make_unique<chat_instance>(url));
        readers.push_back(std::make_unique<client>(chats.back()->port));
    }
    client sender(chats.front()->port);
    std::vector<client*> all{&sender};
    for (const auto& reader : readers) {
        all.push_back(reader.get());
    }
    constexpr int bursts = 20;
    constexpr int count = 1000;
    for (int b = 0; b < bursts; ++b) {
        std::string bytes;
        for (int i = 0; i < count; ++i) {
            bytes +=
                ws_client_frame(ws_text, "burst " + std::to_string(b) + " #" + std::to_string(i));
        }
        asio::write(sender.ws.next_layer(), asio::buffer(bytes));  // in one go
        for (auto* reader : all) {
            for (int i = 0; i < count; ++i) {
                ASSERT_EQ(reader->receive(),
                          "burst " + std::to_string(b) + " #" + std::to_string(i));
            }
        }
    }
    for (const auto& chat : chats) {
        EXPECT_EQ(metric(chat->port, "chat_slow_client_disconnects_total"), 0u);
        EXPECT_EQ(metric(chat->port, "chat_clients"), chat.get() == chats.front().get() ? 2u : 1u);
    }
}

TEST(chat, bursts_close_no_reader_on_memory) {
    expect_bursts_reach_every_reader("memory://", 1);
}

#ifdef BROADCASTER_WITH_REDIS
TEST(chat, bursts_close_no_reader_on_redis) {
    expect_bursts_reach_every_reader(redis_test_url(), 2);
}
#endif

#ifdef BROADCASTER_WITH_POSTGRES
TEST(chat, bursts_close_no_reader_on_postgres) {
    expect_bursts_reach_every_reader(postgres_test_url(), 2);
}
#endif

#ifdef BROADCASTER_WITH_KAFKA
TEST(chat, bursts_close_no_reader_on_kafka) {
    expect_bursts_reach_every_reader(kafka_test_url(), 2);
}
#endif

TEST(chat, sigterm_closes_clients_with_1001_and_exits_0) {
    chat_instance chat("memory://");
    client c(chat.port);
    ::kill(chat.process.pid(), SIGTERM);
    EXPECT_EQ(c.close_code(), websocket::close_code::going_away);
    int status = 0;
    ASSERT_EQ(waitpid(chat.process.pid(), &status, 0), chat.process.pid());
    EXPECT_TRUE(WIFEXITED(status));
    EXPECT_EQ(WEXITSTATUS(status), 0);
    chat.process.forget();
}

}  // namespace
}  // namespace broadcaster::test
