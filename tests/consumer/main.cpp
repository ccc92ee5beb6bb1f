// The README's first example, built against the installed package.
#include <broadcaster/broadcaster.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <iostream>

namespace asio = boost::asio;

asio::awaitable<void> demo(broadcaster::broadcast& bc, int& status) {
    co_await bc.async_connect(asio::use_awaitable);
    auto sub = co_await bc.async_subscribe("chatroom", asio::use_awaitable);
    co_await bc.async_publish("chatroom", "hello", asio::use_awaitable);
    broadcaster::event ev = co_await sub.async_receive(asio::use_awaitable);
    std::cout << ev.channel() << ": " << ev.message() << "\n";
    status = ev.message() == "hello" ? 0 : 1;
}

int main() {
    asio::io_context io;
    broadcaster::broadcast bc(io.get_executor(), "memory://");
    int status = 2;
    asio::co_spawn(io, demo(bc, status), asio::detached);
    io.run();
    return status;
}
