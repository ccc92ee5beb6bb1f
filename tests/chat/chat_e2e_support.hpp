#pragma once

// broadcaster-chat as a child process, and a well-behaved WebSocket client of it (Beast,
// synchronous), for the end-to-end tests.

#include "server_process.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>

#include <cstdint>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace broadcaster::test {

// One broadcaster-chat process.
struct chat_instance {
    scratch_dir dir{"broadcaster-chat"};
    unsigned short port = free_port();
    server_process process;

    explicit chat_instance(const std::string& url, std::vector<std::string> extra = {})
        : process(command(url, port, std::move(extra)), port, dir.path() / "chat.log") {}

    static std::vector<std::string> command(const std::string& url, unsigned short port,
                                            std::vector<std::string> extra) {
        // $BROADCASTER_TEST_CHAT_BINARY runs the tests against another build.
        const char* binary = std::getenv("BROADCASTER_TEST_CHAT_BINARY");
        std::vector<std::string> argv{binary ? binary : BROADCASTER_CHAT_BINARY, "--port",
                                      std::to_string(port), "--broadcast", url};
        argv.insert(argv.end(), extra.begin(), extra.end());
        return argv;
    }
};

// A WebSocket client of the chat room.
struct client {
    boost::asio::io_context io;
    boost::beast::websocket::stream<boost::asio::ip::tcp::socket> ws{io};
    boost::beast::websocket::response_type handshake_response;

    // Joins the room at `target` ("/", "/?since=..."), offering `protocol` if not empty.
    explicit client(unsigned short port, const std::string& target = "/",
                    const std::string& protocol = "") {
        namespace websocket = boost::beast::websocket;
        ws.next_layer().connect({boost::asio::ip::address_v4::loopback(), port});
        ws.set_option(websocket::stream_base::decorator([protocol](websocket::request_type& r) {
            if (!protocol.empty()) {
                r.set(boost::beast::http::field::sec_websocket_protocol, protocol);
            }
        }));
        ws.handshake(handshake_response, "127.0.0.1", target);
        ws.text(true);
    }

    void send(const std::string& text) { ws.write(boost::asio::buffer(text)); }

    std::string receive() {
        boost::beast::flat_buffer buffer;
        ws.read(buffer);
        return boost::beast::buffers_to_string(buffer.data());
    }

    // Reads until the server closes; returns its close code.
    boost::beast::websocket::close_code close_code() {
        boost::beast::flat_buffer buffer;
        boost::beast::error_code ec;
        while (!ec) {
            buffer.clear();
            ws.read(buffer, ec);
        }
        return static_cast<boost::beast::websocket::close_code>(ws.reason().code);
    }
};

// One HTTP request; returns the status and body.
inline std::pair<int, std::string> http_get(unsigned short port, const std::string& target) {
    namespace http = boost::beast::http;
    boost::asio::io_context io;
    boost::beast::tcp_stream stream(io);
    stream.connect({boost::asio::ip::address_v4::loopback(), port});
    http::request<http::empty_body> request(http::verb::get, target, 11);
    request.set(http::field::host, "127.0.0.1");
    http::write(stream, request);
    boost::beast::flat_buffer buffer;
    http::response<http::string_body> response;
    http::read(stream, buffer, response);
    return {response.result_int(), response.body()};
}

// A counter or gauge of the server's /metrics.
inline std::uint64_t metric(unsigned short port, const std::string& name) {
    const auto body = http_get(port, "/metrics").second;
    const auto at = body.find("\n" + name + " ");
    if (at == std::string::npos) {
        throw std::runtime_error("no metric " + name);
    }
    return std::stoull(body.substr(at + name.size() + 2));
}

}  // namespace broadcaster::test
