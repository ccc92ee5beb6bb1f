#pragma once

// A TCP proxy in front of a redis-server that passes what Redis sends to the broadcast's
// subscribe connection (recognised by its CLIENT SETNAME "...-sub") only after a lag,
// and drops what it still holds when Redis closes that connection. So it plays a Redis
// that writes a message to its subscribers some time after answering the PUBLISH (it
// does answer first) and dies or drops the subscriber in between: the message is lost
// although its publish succeeded. Everything else passes at once. Runs on the test's
// io_context.

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
#include <deque>
#include <memory>
#include <string>
#include <string_view>

namespace broadcaster::test {

class lag_proxy {
  public:
    using tcp = boost::asio::ip::tcp;

    lag_proxy(boost::asio::io_context& io, unsigned short upstream_port,
              std::chrono::milliseconds lag)
        : acceptor_(io, tcp::endpoint(boost::asio::ip::address_v4::loopback(), 0)) {
        boost::asio::co_spawn(io, accept(io, acceptor_, upstream_port, lag), boost::asio::detached);
    }
    ~lag_proxy() {
        boost::system::error_code ignored;
        acceptor_.close(ignored);
    }

    unsigned short port() const { return acceptor_.local_endpoint().port(); }

  private:
    using clock = std::chrono::steady_clock;
    struct link {
        tcp::socket client;
        tcp::socket server;
        boost::asio::steady_timer wake;  // the lagging writer waits on it
        bool subscriber = false;
        bool closed = false;
        // From Redis to a subscribe connection, not passed on yet: when, and what.
        std::deque<std::pair<clock::time_point, std::string>> held;
        explicit link(boost::asio::io_context& io) : client(io), server(io), wake(io) {}
        void close() {
            boost::system::error_code ignored;
            closed = true;
            held.clear();
            client.close(ignored);
            server.close(ignored);
            wake.cancel();
        }
    };
    using awaitable = boost::asio::awaitable<void>;
    static constexpr auto as_tuple = boost::asio::as_tuple(boost::asio::use_awaitable);

    // Static, everything by value or owned by the io_context: the coroutines may
    // outlive the proxy object. (`acceptor` is only touched until it is closed.)
    static awaitable accept(boost::asio::io_context& io, tcp::acceptor& acceptor,
                            unsigned short port, std::chrono::milliseconds lag) {
        for (;;) {
            auto l = std::make_shared<link>(io);
            auto [ec] = co_await acceptor.async_accept(l->client, as_tuple);
            if (ec) {
                co_return;  // closed
            }
            boost::asio::co_spawn(io, start(io, l, port, lag), boost::asio::detached);
        }
    }

    static awaitable start(boost::asio::io_context& io, std::shared_ptr<link> l,
                           unsigned short port, std::chrono::milliseconds lag) {
        auto [ec] = co_await l->server.async_connect(
            {boost::asio::ip::address_v4::loopback(), port}, as_tuple);
        if (ec) {
            l->close();  // the server is down: the client sees the loss
            co_return;
        }
        boost::asio::co_spawn(io, to_server(l), boost::asio::detached);
        boost::asio::co_spawn(io, lagging_writer(l), boost::asio::detached);
        co_await from_server(l, lag);
    }

    static awaitable to_server(std::shared_ptr<link> l) {
        std::array<char, 64 * 1024> buffer;
        for (;;) {
            auto [ec, n] =
                co_await l->client.async_read_some(boost::asio::buffer(buffer), as_tuple);
            if (ec || l->closed) {
                break;
            }
            // The name comes before anything Redis answers on this connection.
            l->subscriber = l->subscriber ||
                            std::string_view(buffer.data(), n).find("-sub") != std::string::npos;
            auto [write_ec, written] = co_await boost::asio::async_write(
                l->server, boost::asio::buffer(buffer.data(), n), as_tuple);
            if (write_ec) {
                break;
            }
        }
        l->close();
    }

    static awaitable from_server(std::shared_ptr<link> l, std::chrono::milliseconds lag) {
        std::array<char, 64 * 1024> buffer;
        for (;;) {
            auto [ec, n] =
                co_await l->server.async_read_some(boost::asio::buffer(buffer), as_tuple);
            if (ec || l->closed) {
                break;  // what is still held goes with the connection
            }
            if (l->subscriber) {
                l->held.emplace_back(clock::now() + lag, std::string(buffer.data(), n));
                l->wake.cancel();
                continue;
            }
            auto [write_ec, written] = co_await boost::asio::async_write(
                l->client, boost::asio::buffer(buffer.data(), n), as_tuple);
            if (write_ec) {
                break;
            }
        }
        l->close();
    }

    // Passes what Redis sent to a subscribe connection on, each chunk once it is due.
    static awaitable lagging_writer(std::shared_ptr<link> l) {
        while (!l->closed) {
            if (l->held.empty() || l->held.front().first > clock::now()) {
                l->wake.expires_at(l->held.empty() ? clock::time_point::max()
                                                   : l->held.front().first);
                co_await l->wake.async_wait(as_tuple);
                continue;
            }
            const auto data = std::move(l->held.front().second);
            l->held.pop_front();
            auto [ec, written] =
                co_await boost::asio::async_write(l->client, boost::asio::buffer(data), as_tuple);
            if (ec) {
                l->close();
            }
        }
    }

    tcp::acceptor acceptor_;
};

}  // namespace broadcaster::test
