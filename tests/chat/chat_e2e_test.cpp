// End-to-end tests of broadcaster-chat: the real binary, started on free ports, driven
// by WebSocket and HTTP clients (Beast, synchronous) over loopback.

#include "server_process.hpp"
#include "test_servers.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>

#include <gtest/gtest.h>

#include <thread>

namespace broadcaster::test {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;
using namespace std::chrono_literals;

// One broadcaster-chat process.
struct chat_instance {
    scratch_dir dir{"broadcaster-chat"};
    unsigned short port = free_port();
    server_process process;

    explicit chat_instance(const std::string& url, std::vector<std::string> extra = {})
        : process(command(url, port, std::move(extra)), port, dir.path() / "chat.log") {}

    static std::vector<std::string> command(const std::string& url, unsigned short port,
                                            std::vector<std::string> extra) {
        std::vector<std::string> argv{BROADCASTER_CHAT_BINARY, "--port", std::to_string(port),
                                      "--broadcast", url};
        argv.insert(argv.end(), extra.begin(), extra.end());
        return argv;
    }
};

// A WebSocket client of the chat room.
struct client {
    asio::io_context io;
    websocket::stream<tcp::socket> ws{io};

    explicit client(unsigned short port) {
        ws.next_layer().connect({asio::ip::address_v4::loopback(), port});
        ws.handshake("127.0.0.1", "/");
        ws.text(true);
    }

    void send(const std::string& text) { ws.write(asio::buffer(text)); }

    std::string receive() {
        beast::flat_buffer buffer;
        ws.read(buffer);
        return beast::buffers_to_string(buffer.data());
    }

    // Reads until the server closes; returns its close code.
    websocket::close_code close_code() {
        beast::flat_buffer buffer;
        beast::error_code ec;
        while (!ec) {
            buffer.clear();
            ws.read(buffer, ec);
        }
        return static_cast<websocket::close_code>(ws.reason().code);
    }
};

// One HTTP request; returns the status and body.
std::pair<int, std::string> http_get(unsigned short port, const std::string& target) {
    asio::io_context io;
    beast::tcp_stream stream(io);
    stream.connect(tcp::endpoint(asio::ip::address_v4::loopback(), port));
    http::request<http::empty_body> request(http::verb::get, target, 11);
    request.set(http::field::host, "127.0.0.1");
    http::write(stream, request);
    beast::flat_buffer buffer;
    http::response<http::string_body> response;
    http::read(stream, buffer, response);
    return {response.result_int(), response.body()};
}

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

std::uint64_t metric(unsigned short port, const std::string& name) {
    const auto body = http_get(port, "/metrics").second;
    const auto at = body.find("\n" + name + " ");
    if (at == std::string::npos) {
        throw std::runtime_error("no metric " + name);
    }
    return std::stoull(body.substr(at + name.size() + 2));
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

#ifdef BROADCASTER_WITH_POSTGRES
TEST(chat, two_instances_on_postgres_form_one_room) {
    expect_one_room(postgres_test_url());
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

TEST(chat, a_client_that_stops_reading_is_disconnected_and_slows_nobody) {
    chat_instance chat("memory://", {"--client-queue-messages", "16"});
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
    const auto until = std::chrono::steady_clock::now() + 5s;
    while (metric(chat.port, "chat_slow_client_disconnects_total") == 0 &&
           std::chrono::steady_clock::now() < until) {
        std::this_thread::sleep_for(20ms);
    }
    EXPECT_GE(metric(chat.port, "chat_slow_client_disconnects_total"), 1u);
    EXPECT_EQ(metric(chat.port, "chat_clients"), 2u);
}

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
