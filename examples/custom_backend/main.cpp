// A custom backend in use: registers the `linger` scheme (linger_backend.hpp), then two
// broadcasts on one hub, as two app instances would be, exchange a few messages.
//
//   build/examples/custom_backend/broadcaster-custom-backend-example
//
// Prints what the second broadcast's subscriber receives, then exits.

#include "linger_backend.hpp"

#include <broadcaster/broadcaster.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <iostream>

namespace asio = boost::asio;

asio::awaitable<void> demo(asio::io_context& io) {
    // Publishes wait up to 5 ms to travel in one batch.
    broadcaster::broadcast first(io, "linger://demo?linger_ms=5");
    broadcaster::broadcast second(io, "linger://demo");
    co_await first.async_connect(asio::use_awaitable);
    co_await second.async_connect(asio::use_awaitable);

    auto sub = co_await second.async_subscribe("news", asio::use_awaitable);
    for (const char* text : {"one", "two", "three"}) {
        first.async_publish("news", text, asio::detached);  // one batch of three
    }
    for (int i = 0; i < 3; ++i) {
        const auto ev = co_await sub.async_receive(asio::use_awaitable);
        std::cout << ev.channel() << ": " << ev.message() << "\n";
    }
    co_await first.async_disconnect(asio::use_awaitable);
    co_await second.async_disconnect(asio::use_awaitable);
}

int main() {
    linger_example::register_linger_backend();
    asio::io_context io;
    asio::co_spawn(io, demo(io), [](std::exception_ptr e) {
        if (e) {
            std::rethrow_exception(e);
        }
    });
    io.run();
}
