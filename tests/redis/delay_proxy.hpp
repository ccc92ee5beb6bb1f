#pragma once

// A TCP proxy in front of a redis-server that holds back what the broadcast's
// subscribe connection sends (recognised by its CLIENT SETNAME "...-sub"), by a delay
// per chunk and in order, while the publish connection goes through at once. It lets
// a test fix which of the two Redis sees first. Runs on the test's io_context.

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <array>
#include <chrono>
#include <memory>
#include <string_view>

namespace broadcaster::test {

class delay_proxy {
  public:
    using tcp = boost::asio::ip::tcp;

    delay_proxy(boost::asio::io_context& io, unsigned short upstream_port,
                std::chrono::milliseconds delay)
        : io_(io),
          acceptor_(io, tcp::endpoint(boost::asio::ip::address_v4::loopback(), 0)),
          delay_(std::make_shared<std::chrono::milliseconds>(delay)) {
        boost::asio::co_spawn(io_, accept(io_, acceptor_, upstream_port, delay_),
                              boost::asio::detached);
    }

    // From now on (0: no delay); the io_context's thread only.
    void set_delay(std::chrono::milliseconds delay) { *delay_ = delay; }
    unsigned short port() const { return acceptor_.local_endpoint().port(); }
    ~delay_proxy() {
        boost::system::error_code ignored;
        acceptor_.close(ignored);
    }

  private:
    struct link {
        tcp::socket client;
        tcp::socket server;
        bool delayed = false;  // the subscribe connection
        explicit link(boost::asio::io_context& io) : client(io), server(io) {}
        void close() {
            boost::system::error_code ignored;
            client.close(ignored);
            server.close(ignored);
        }
    };

    // Static, everything by value or owned by the io_context: the coroutines may
    // outlive the proxy object. (`acceptor` is only touched until it is closed.)
    static boost::asio::awaitable<void> accept(boost::asio::io_context& io, tcp::acceptor& acceptor,
                                               unsigned short port,
                                               std::shared_ptr<std::chrono::milliseconds> delay) {
        for (;;) {
            auto l = std::make_shared<link>(io);
            auto [ec] = co_await acceptor.async_accept(
                l->client, boost::asio::as_tuple(boost::asio::use_awaitable));
            if (ec) {
                co_return;  // closed
            }
            boost::asio::co_spawn(io, start(io, l, port, delay), boost::asio::detached);
        }
    }

    static boost::asio::awaitable<void> start(boost::asio::io_context& io, std::shared_ptr<link> l,
                                              unsigned short port,
                                              std::shared_ptr<std::chrono::milliseconds> delay) {
        auto [ec] =
            co_await l->server.async_connect({boost::asio::ip::address_v4::loopback(), port},
                                             boost::asio::as_tuple(boost::asio::use_awaitable));
        if (ec) {
            l->close();  // the server is down: the client sees the loss
            co_return;
        }
        boost::asio::co_spawn(io, pump(io, l, true, delay), boost::asio::detached);
        co_await pump(io, l, false, delay);
    }

    static boost::asio::awaitable<void> pump(boost::asio::io_context& io, std::shared_ptr<link> l,
                                             bool to_server,
                                             std::shared_ptr<std::chrono::milliseconds> delay) {
        auto& from = to_server ? l->client : l->server;
        auto& to = to_server ? l->server : l->client;
        std::array<char, 64 * 1024> buffer;
        boost::asio::steady_timer timer(io);
        for (;;) {
            auto [ec, n] = co_await from.async_read_some(
                boost::asio::buffer(buffer), boost::asio::as_tuple(boost::asio::use_awaitable));
            if (ec) {
                break;
            }
            if (to_server) {
                l->delayed = l->delayed || std::string_view(buffer.data(), n).find("-sub") !=
                                               std::string_view::npos;
                if (l->delayed && delay->count() > 0) {
                    timer.expires_after(*delay);
                    co_await timer.async_wait(boost::asio::as_tuple(boost::asio::use_awaitable));
                }
            }
            auto [write_ec, written] = co_await boost::asio::async_write(
                to, boost::asio::buffer(buffer.data(), n),
                boost::asio::as_tuple(boost::asio::use_awaitable));
            if (write_ec) {
                break;
            }
        }
        l->close();
    }

    boost::asio::io_context& io_;
    tcp::acceptor acceptor_;
    std::shared_ptr<std::chrono::milliseconds> delay_;
};

}  // namespace broadcaster::test
