// A program built against the installed package, as a user's project would be: default
// completion tokens only (`use_awaitable` made the default with `as_default_on`), a
// timeout on connect and on subscribe (`||` of awaitable operators, which cancels the
// loser), and `async_shutdown`. It checks what the docs say each step does and exits
// non-zero, naming the step, if one does not.
#include <broadcaster/broadcaster.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <chrono>
#include <exception>
#include <iostream>
#include <stdexcept>

namespace asio = boost::asio;
using namespace asio::experimental::awaitable_operators;
using namespace std::chrono_literals;

using awaitable_broadcast = asio::use_awaitable_t<>::as_default_on_t<broadcaster::broadcast>;
using awaitable_subscriber = asio::use_awaitable_t<>::as_default_on_t<broadcaster::subscriber>;
using awaitable_timer = asio::use_awaitable_t<>::as_default_on_t<asio::steady_timer>;

void check(bool ok, const char* what) {
    if (!ok) {
        throw std::runtime_error(what);
    }
}

asio::awaitable<void> demo(awaitable_broadcast& bc) {
    const auto executor = co_await asio::this_coro::executor;

    // Connect, giving up after 5 s (the timer's branch would win, cancelling the connect).
    awaitable_timer connect_timer(executor, 5s);
    auto connected = co_await (bc.async_connect() || connect_timer.async_wait());
    check(connected.index() == 0, "connect: the timeout won");
    check(bc.state() == broadcaster::connection_state::connected, "connect: not connected");

    // Subscribe, giving up after 5 s; the subscriber's own default token is use_awaitable.
    awaitable_timer subscribe_timer(executor, 5s);
    auto subscribed = co_await (bc.async_subscribe("chatroom") || subscribe_timer.async_wait());
    check(subscribed.index() == 0, "subscribe: the timeout won");
    awaitable_subscriber sub(std::get<0>(std::move(subscribed)));

    co_await bc.async_publish("chatroom", "hello");
    broadcaster::event ev = co_await sub.async_receive();
    std::cout << ev.channel() << ": " << ev.message() << "\n";
    check(ev.channel() == "chatroom" && ev.message() == "hello", "receive: wrong event");

    // Shut down: the subscriber ends, the broadcast is disconnected and may connect again.
    co_await bc.async_shutdown();
    check(bc.state() == broadcaster::connection_state::disconnected, "shutdown: still connected");
    auto [ec, last] = co_await sub.async_receive(asio::as_tuple(asio::use_awaitable));
    check(ec == broadcaster::error::end_of_stream, "shutdown: the subscriber did not end");
    co_await bc.async_connect();
    co_await bc.async_shutdown();
}

int main() {
    asio::io_context io;
    awaitable_broadcast bc(io, "memory://");
    int status = 2;
    asio::co_spawn(io, demo(bc), [&](std::exception_ptr e) {
        status = 0;
        if (e) {
            try {
                std::rethrow_exception(e);
            } catch (const std::exception& failure) {
                std::cerr << "consumer: " << failure.what() << "\n";
                status = 1;
            }
        }
    });
    io.run();
    return status;
}
