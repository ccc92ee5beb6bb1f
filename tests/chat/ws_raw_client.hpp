#pragma once

// A raw WebSocket client for conformance tests: writes any bytes (frames with reserved
// bits, unmasked, bad lengths, garbage), reads the server's frames exactly as sent, and
// tells how the connection ended (EOF, reset, or still open at a deadline). POSIX
// sockets with poll(): every read has a deadline.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace broadcaster::test::ws {

using namespace std::chrono_literals;
using clock = std::chrono::steady_clock;

inline constexpr unsigned op_continuation = 0x0;
inline constexpr unsigned op_text = 0x1;
inline constexpr unsigned op_binary = 0x2;
inline constexpr unsigned op_close = 0x8;
inline constexpr unsigned op_ping = 0x9;
inline constexpr unsigned op_pong = 0xa;

// A frame as the server sent it.
struct frame {
    bool fin = true;
    unsigned rsv = 0;  // the three reserved bits, RSV1 highest
    unsigned opcode = 0;
    bool masked = false;
    std::string payload;

    bool is_close() const { return opcode == op_close; }
    // The close frame's status code; 1005 (none) when it has no payload.
    unsigned close_code() const {
        return payload.size() >= 2 ? (static_cast<unsigned char>(payload[0]) << 8) |
                                         static_cast<unsigned char>(payload[1])
                                   : 1005;
    }
    std::string close_reason() const { return payload.size() > 2 ? payload.substr(2) : ""; }
};

// How the frame's length is written: the shortest form (as RFC 6455 requires), or
// forced to the 16- or 64-bit form.
enum class length_form { shortest, bits16, bits64 };

struct frame_options {
    bool fin = true;
    unsigned rsv = 0;
    bool mask = true;
    length_form form = length_form::shortest;
    std::optional<std::uint64_t> declared_length = std::nullopt;  // a length that lies
    std::uint32_t mask_key = 0x37fa213d;
};

// One client frame's bytes.
inline std::string encode_frame(unsigned opcode, std::string_view payload,
                                const frame_options& options = {}) {
    std::string out;
    out += static_cast<char>((options.fin ? 0x80 : 0) | ((options.rsv & 7) << 4) | (opcode & 0xf));
    const std::uint64_t length = options.declared_length.value_or(payload.size());
    const unsigned char mask_bit = options.mask ? 0x80 : 0;
    auto form = options.form;
    if (form == length_form::shortest) {
        form = length < 126 ? length_form::shortest
                            : (length < 65536 ? length_form::bits16 : length_form::bits64);
    }
    if (form == length_form::shortest) {
        out += static_cast<char>(mask_bit | length);
    } else if (form == length_form::bits16) {
        out += static_cast<char>(mask_bit | 126);
        out += static_cast<char>((length >> 8) & 0xff);
        out += static_cast<char>(length & 0xff);
    } else {
        out += static_cast<char>(mask_bit | 127);
        for (int shift = 56; shift >= 0; shift -= 8) {
            out += static_cast<char>((length >> shift) & 0xff);
        }
    }
    unsigned char key[4] = {static_cast<unsigned char>(options.mask_key >> 24),
                            static_cast<unsigned char>(options.mask_key >> 16),
                            static_cast<unsigned char>(options.mask_key >> 8),
                            static_cast<unsigned char>(options.mask_key)};
    if (options.mask) {
        out.append(reinterpret_cast<const char*>(key), 4);
    }
    for (std::size_t i = 0; i < payload.size(); ++i) {
        out += options.mask ? static_cast<char>(payload[i] ^ key[i % 4]) : payload[i];
    }
    return out;
}

// A close frame's payload: the code in network order, then the reason.
inline std::string close_payload(unsigned code, std::string_view reason = {}) {
    std::string out;
    out += static_cast<char>((code >> 8) & 0xff);
    out += static_cast<char>(code & 0xff);
    out.append(reason);
    return out;
}

// A syntactically valid key (base64 of 16 bytes).
inline constexpr const char* good_key = "dGhlIHNhbXBsZSBub25jZQ==";

// An upgrade request. `host` empty: no Host field. `extra`: whole header lines.
inline std::string upgrade_request(const std::string& host, const std::string& key = good_key,
                                   const std::vector<std::string>& extra = {}) {
    std::string out = "GET / HTTP/1.1\r\n";
    if (!host.empty()) {
        out += "Host: " + host + "\r\n";
    }
    out += "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n";
    if (!key.empty()) {
        out += "Sec-WebSocket-Key: " + key + "\r\n";
    }
    for (const auto& line : extra) {
        out += line + "\r\n";
    }
    return out + "\r\n";
}

// The head of an HTTP response.
struct http_head {
    int status = 0;
    std::string text;  // status line and fields

    bool has(std::string_view needle) const {
        std::string lower(text), want(needle);
        for (auto* s : {&lower, &want}) {
            for (auto& c : *s) {
                c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
            }
        }
        return lower.find(want) != std::string::npos;
    }
};

enum class ending { open, eof, reset, timeout };

inline const char* to_string(ending e) {
    switch (e) {
        case ending::open:
            return "open";
        case ending::eof:
            return "eof";
        case ending::reset:
            return "reset";
        case ending::timeout:
            return "timeout";
    }
    return "?";
}

class raw_client {
  public:
    explicit raw_client(unsigned short port) {
        fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd_ < 0) {
            throw std::runtime_error(std::string("socket: ") + std::strerror(errno));
        }
        sockaddr_in address{};
        address.sin_family = AF_INET;
        address.sin_port = htons(port);
        address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (::connect(fd_, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
            const auto message = std::string("connect: ") + std::strerror(errno);
            ::close(fd_);
            throw std::runtime_error(message);
        }
        const int one = 1;
        ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    raw_client(const raw_client&) = delete;
    raw_client& operator=(const raw_client&) = delete;
    ~raw_client() { close(); }

    void close() {
        if (fd_ >= 0) {
            ::close(fd_);
            fd_ = -1;
        }
    }

    // Writes all of `bytes`; false if the server closed or reset the connection.
    bool send(std::string_view bytes) {
        while (!bytes.empty()) {
            const auto n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
            if (n < 0) {
                if (errno == EINTR) {
                    continue;
                }
                return false;
            }
            bytes.remove_prefix(static_cast<std::size_t>(n));
        }
        return true;
    }

    bool send_frame(unsigned opcode, std::string_view payload, const frame_options& options = {}) {
        return send(encode_frame(opcode, payload, options));
    }

    void shutdown_write() { ::shutdown(fd_, SHUT_WR); }

    // Reads an HTTP response head (up to the blank line), within `timeout`.
    std::optional<http_head> read_http(std::chrono::milliseconds timeout = 5000ms) {
        const auto until = clock::now() + timeout;
        std::size_t end;
        while ((end = buffer_.find("\r\n\r\n")) == std::string::npos) {
            if (!fill(until)) {
                return std::nullopt;
            }
        }
        http_head head;
        head.text = buffer_.substr(0, end + 2);
        buffer_.erase(0, end + 4);
        if (head.text.size() >= 12 && head.text.compare(0, 5, "HTTP/") == 0) {
            head.status = std::stoi(head.text.substr(9, 3));
        }
        return head;
    }

    // Sends an upgrade request for 127.0.0.1 and reads the response head.
    std::optional<http_head> upgrade(const std::vector<std::string>& extra = {}) {
        send(upgrade_request("127.0.0.1", good_key, extra));
        return read_http();
    }

    // Reads the next frame, within `timeout`; nullopt when the connection ended or the
    // deadline passed (see ended()).
    std::optional<frame> read_frame(std::chrono::milliseconds timeout = 5000ms) {
        const auto until = clock::now() + timeout;
        for (;;) {
            if (auto f = parse()) {
                return f;
            }
            if (!fill(until)) {
                return std::nullopt;
            }
        }
    }

    // Reads until the connection ends or `timeout`; returns how it ended.
    ending read_to_end(std::chrono::milliseconds timeout = 5000ms) {
        const auto until = clock::now() + timeout;
        while (fill(until)) {
        }
        return ending_;
    }

    // The bytes read but not parsed yet (an HTTP body, say), removed from the buffer.
    std::string take_rest() { return std::exchange(buffer_, {}); }

    ending ended() const { return ending_; }
    std::size_t buffered() const { return buffer_.size(); }
    int fd() const { return fd_; }

  private:
    // One read into the buffer; false when the connection ended or time ran out.
    bool fill(clock::time_point until) {
        for (;;) {
            const auto left =
                std::chrono::duration_cast<std::chrono::milliseconds>(until - clock::now());
            if (left.count() <= 0) {
                ending_ = ending::timeout;
                return false;
            }
            pollfd p{fd_, POLLIN, 0};
            const int ready = ::poll(&p, 1, static_cast<int>(left.count()));
            if (ready < 0 && errno == EINTR) {
                continue;
            }
            if (ready <= 0) {
                continue;  // the deadline check above ends it
            }
            char chunk[16384];
            const auto n = ::recv(fd_, chunk, sizeof chunk, 0);
            if (n > 0) {
                buffer_.append(chunk, static_cast<std::size_t>(n));
                return true;
            }
            if (n < 0 && errno == EINTR) {
                continue;
            }
            ending_ = n == 0 ? ending::eof : ending::reset;
            return false;
        }
    }

    // Takes one whole frame off the buffer, if there is one.
    std::optional<frame> parse() {
        if (buffer_.size() < 2) {
            return std::nullopt;
        }
        const auto byte = [&](std::size_t i) { return static_cast<unsigned char>(buffer_[i]); };
        frame f;
        f.fin = byte(0) & 0x80;
        f.rsv = (byte(0) >> 4) & 7;
        f.opcode = byte(0) & 0xf;
        f.masked = byte(1) & 0x80;
        std::uint64_t length = byte(1) & 0x7f;
        std::size_t at = 2;
        if (length == 126 || length == 127) {
            const std::size_t bytes = length == 126 ? 2 : 8;
            if (buffer_.size() < at + bytes) {
                return std::nullopt;
            }
            length = 0;
            for (std::size_t i = 0; i < bytes; ++i) {
                length = (length << 8) | byte(at + i);
            }
            at += bytes;
        }
        unsigned char key[4] = {0, 0, 0, 0};
        if (f.masked) {
            if (buffer_.size() < at + 4) {
                return std::nullopt;
            }
            for (int i = 0; i < 4; ++i) {
                key[i] = byte(at + i);
            }
            at += 4;
        }
        if (length > (std::uint64_t{1} << 31)) {
            throw std::runtime_error("the server sent a frame of " + std::to_string(length) +
                                     " bytes");
        }
        if (buffer_.size() < at + length) {
            return std::nullopt;
        }
        f.payload = buffer_.substr(at, length);
        if (f.masked) {
            for (std::size_t i = 0; i < f.payload.size(); ++i) {
                f.payload[i] = static_cast<char>(f.payload[i] ^ key[i % 4]);
            }
        }
        buffer_.erase(0, at + length);
        return f;
    }

    int fd_ = -1;
    std::string buffer_;
    ending ending_ = ending::open;
};

}  // namespace broadcaster::test::ws
