#pragma once

// A WebSocket client on a bare socket, for tests that need what a well-behaved client
// (Beast's) will not do: write frames in bulk or malformed, never read, and see the
// exact bytes and frames the server sends, including whether the connection ended
// with a clean close (EOF) or a reset.

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>

namespace broadcaster::test {

// A frame as the server sent it.
struct ws_frame {
    unsigned opcode = 0;
    bool fin = true;
    std::string payload;

    // The status code of a close frame (1005 if it has none).
    unsigned close_code() const {
        return payload.size() >= 2 ? (static_cast<unsigned char>(payload[0]) << 8) |
                                         static_cast<unsigned char>(payload[1])
                                   : 1005;
    }
};

inline constexpr unsigned ws_text = 0x1;
inline constexpr unsigned ws_close = 0x8;
inline constexpr unsigned ws_ping = 0x9;
inline constexpr unsigned ws_pong = 0xa;

// A client frame: masked, as RFC 6455 requires of clients.
inline std::string ws_client_frame(unsigned opcode, const std::string& payload, bool fin = true) {
    std::string frame;
    frame += static_cast<char>((fin ? 0x80 : 0) | opcode);
    const auto size = payload.size();
    if (size < 126) {
        frame += static_cast<char>(0x80 | size);
    } else if (size < 65536) {
        frame += static_cast<char>(0x80 | 126);
        frame += static_cast<char>(size >> 8);
        frame += static_cast<char>(size & 0xff);
    } else {
        frame += static_cast<char>(0x80 | 127);
        for (int shift = 56; shift >= 0; shift -= 8) {
            frame += static_cast<char>((static_cast<std::uint64_t>(size) >> shift) & 0xff);
        }
    }
    const unsigned char key[4] = {0x37, 0xfa, 0x21, 0x3d};
    frame.append(reinterpret_cast<const char*>(key), 4);
    for (std::size_t i = 0; i < size; ++i) {
        frame += static_cast<char>(payload[i] ^ key[i % 4]);
    }
    return frame;
}

inline std::string ws_close_frame(unsigned code) {
    return ws_client_frame(
        ws_close, std::string{static_cast<char>(code >> 8), static_cast<char>(code & 0xff)});
}

class raw_websocket {
  public:
    // Connects and upgrades. `receive_buffer`: SO_RCVBUF, if not 0 (a client that reads
    // little fills up sooner).
    explicit raw_websocket(unsigned short port, int receive_buffer = 0) : socket_(io_) {
        socket_.open(boost::asio::ip::tcp::v4());
        if (receive_buffer > 0) {
            socket_.set_option(boost::asio::socket_base::receive_buffer_size(receive_buffer));
        }
        socket_.connect({boost::asio::ip::address_v4::loopback(), port});
        send("GET / HTTP/1.1\r\nHost: 127.0.0.1:" + std::to_string(port) +
             "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
             "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n");
        std::size_t end;
        while ((end = input_.find("\r\n\r\n")) == std::string::npos) {
            if (!fill()) {
                throw std::runtime_error("no upgrade response");
            }
        }
        if (input_.rfind("HTTP/1.1 101", 0) != 0) {
            throw std::runtime_error("upgrade refused: " + input_.substr(0, end));
        }
        input_.erase(0, end + 4);
    }

    boost::asio::ip::tcp::socket& socket() { return socket_; }

    void send(const std::string& bytes) { boost::asio::write(socket_, boost::asio::buffer(bytes)); }
    void send(const std::string& bytes, boost::system::error_code& ec) {
        boost::asio::write(socket_, boost::asio::buffer(bytes), ec);
    }

    // The next frame; nullopt once the connection has ended (see `end()`).
    std::optional<ws_frame> read_frame() {
        for (;;) {
            if (auto frame = parse()) {
                return frame;
            }
            if (!fill()) {
                return std::nullopt;
            }
        }
    }

    // How the connection ended: eof for a clean close, connection_reset for a reset.
    boost::system::error_code end() const { return end_; }
    // Bytes received after the last complete frame when the connection ended.
    std::size_t leftover() const { return input_.size(); }

  private:
    bool fill() {
        if (end_) {
            return false;
        }
        char chunk[16384];
        const auto n = socket_.read_some(boost::asio::buffer(chunk), end_);
        input_.append(chunk, n);
        return !end_ || n > 0;
    }

    std::optional<ws_frame> parse() {
        if (input_.size() < 2) {
            return std::nullopt;
        }
        const auto byte = [&](std::size_t i) { return static_cast<unsigned char>(input_[i]); };
        std::size_t header = 2;
        std::uint64_t size = byte(1) & 0x7f;
        if (size == 126) {
            header = 4;
        } else if (size == 127) {
            header = 10;
        }
        if (input_.size() < header) {
            return std::nullopt;
        }
        if (header > 2) {
            size = 0;
            for (std::size_t i = 2; i < header; ++i) {
                size = (size << 8) | byte(i);
            }
        }
        if (byte(1) & 0x80) {
            throw std::runtime_error("the server sent a masked frame");
        }
        if (input_.size() < header + size) {
            return std::nullopt;
        }
        ws_frame frame;
        frame.opcode = byte(0) & 0x0f;
        frame.fin = (byte(0) & 0x80) != 0;
        frame.payload = input_.substr(header, size);
        input_.erase(0, header + size);
        return frame;
    }

    boost::asio::io_context io_;
    boost::asio::ip::tcp::socket socket_;
    std::string input_;
    boost::system::error_code end_;
};

}  // namespace broadcaster::test
