#pragma once

// A TCP proxy in front of a redis-server that, while told to, drops every chunk a
// client sends that contains a SUBSCRIBE: the connection stays up, the command gets no
// reply, as with a broker that stalls (paused, overloaded) or a middlebox that lost it.
// Everything else passes. Runs on the test's io_context.

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <array>
#include <memory>
#include <string_view>

namespace broadcaster::test {

class swallow_proxy {
  public:
    using tcp = boost::asio::ip::tcp;

    swallow_proxy(boost::asio::io_context& io, unsigned short upstream_port)
        : acceptor_(io, tcp::endpoint(boost::asio::ip::address_v4::loopback(), 0)),
          state_(std::make_shared<state>()) {
        boost::asio::co_spawn(io, accept(io, acceptor_, upstream_port, state_),
                              boost::asio::detached);
    }
    ~swallow_proxy() {
        boost::system::error_code ignored;
        acceptor_.close(ignored);
    }

    // From now on; the io_context's thread only.
    void swallow_subscribes(bool on) { state_->on = on; }
    // Chunks swallowed so far: one means a SUBSCRIBE was sent (e.g. a restore started).
    std::size_t swallowed() const { return state_->swallowed; }
    unsigned short port() const { return acceptor_.local_endpoint().port(); }

  private:
    struct state {
        bool on = false;
        std::size_t swallowed = 0;
    };
    struct link {
        tcp::socket client;
        tcp::socket server;
        explicit link(boost::asio::io_context& io) : client(io), server(io) {}
        void close() {
            boost::system::error_code ignored;
            client.close(ignored);
            server.close(ignored);
        }
    };

    // Static, everything by value or owned by the io_context: the coroutines may
    // outlive the proxy object.
    static boost::asio::awaitable<void> accept(boost::asio::io_context& io, tcp::acceptor& acceptor,
                                               unsigned short port,
                                               std::shared_ptr<state> swallow) {
        for (;;) {
            auto l = std::make_shared<link>(io);
            auto [ec] = co_await acceptor.async_accept(
                l->client, boost::asio::as_tuple(boost::asio::use_awaitable));
            if (ec) {
                co_return;
            }
            boost::asio::co_spawn(io, start(io, l, port, swallow), boost::asio::detached);
        }
    }

    static boost::asio::awaitable<void> start(boost::asio::io_context& io, std::shared_ptr<link> l,
                                              unsigned short port, std::shared_ptr<state> swallow) {
        auto [ec] =
            co_await l->server.async_connect({boost::asio::ip::address_v4::loopback(), port},
                                             boost::asio::as_tuple(boost::asio::use_awaitable));
        if (ec) {
            l->close();
            co_return;
        }
        boost::asio::co_spawn(io, pump(l, true, swallow), boost::asio::detached);
        co_await pump(l, false, swallow);
    }

    static boost::asio::awaitable<void> pump(std::shared_ptr<link> l, bool to_server,
                                             std::shared_ptr<state> swallow) {
        auto& from = to_server ? l->client : l->server;
        auto& to = to_server ? l->server : l->client;
        std::array<char, 64 * 1024> buffer;
        for (;;) {
            auto [ec, n] = co_await from.async_read_some(
                boost::asio::buffer(buffer), boost::asio::as_tuple(boost::asio::use_awaitable));
            if (ec) {
                break;
            }
            if (to_server && swallow->on &&
                std::string_view(buffer.data(), n).find("SUBSCRIBE") != std::string_view::npos) {
                ++swallow->swallowed;
                continue;
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

    tcp::acceptor acceptor_;
    std::shared_ptr<state> state_;
};

}  // namespace broadcaster::test
