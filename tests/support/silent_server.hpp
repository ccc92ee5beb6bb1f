#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include <array>
#include <memory>
#include <vector>

namespace broadcaster::test {

// A TCP server that accepts connections and never answers: a broker that hangs. It
// counts the connections it accepted and those their client closed.
class silent_server {
  public:
    explicit silent_server(boost::asio::io_context& io) : state_(std::make_shared<state>(io)) {
        accept(state_);
    }
    ~silent_server() {
        boost::system::error_code ignored;
        state_->acceptor.close(ignored);
        for (auto& socket : state_->sockets) {
            socket->close(ignored);
        }
    }
    silent_server(const silent_server&) = delete;
    silent_server& operator=(const silent_server&) = delete;

    unsigned short port() const { return state_->acceptor.local_endpoint().port(); }
    int accepted() const noexcept { return state_->accepted; }
    int closed_by_client() const noexcept { return state_->closed; }

  private:
    using tcp = boost::asio::ip::tcp;
    struct state {
        explicit state(boost::asio::io_context& io)
            : acceptor(io, tcp::endpoint(boost::asio::ip::address_v4::loopback(), 0)) {}
        tcp::acceptor acceptor;
        std::vector<std::shared_ptr<tcp::socket>> sockets;
        int accepted = 0;
        int closed = 0;
    };

    static void accept(const std::shared_ptr<state>& s) {
        s->acceptor.async_accept([s](boost::system::error_code ec, tcp::socket socket) {
            if (ec) {
                return;
            }
            ++s->accepted;
            auto connection = std::make_shared<tcp::socket>(std::move(socket));
            s->sockets.push_back(connection);
            watch(s, connection);
            accept(s);
        });
    }
    // Reads (and ignores) what the client sends until it closes the connection.
    static void watch(const std::shared_ptr<state>& s, const std::shared_ptr<tcp::socket>& socket) {
        auto buffer = std::make_shared<std::array<char, 1024>>();
        socket->async_read_some(boost::asio::buffer(*buffer),
                                [s, socket, buffer](boost::system::error_code ec, std::size_t) {
                                    if (ec == boost::asio::error::operation_aborted) {
                                        return;  // the server closed it
                                    }
                                    if (ec) {
                                        ++s->closed;
                                        socket->close(ec);
                                        return;
                                    }
                                    watch(s, socket);
                                });
    }

    std::shared_ptr<state> state_;
};

}  // namespace broadcaster::test
