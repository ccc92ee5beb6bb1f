// The cost of joining a channel with its history: how long a subscribe with
// `last = N` takes until the N-th history event is in hand, beside a plain subscribe
// (confirmed by the broker, no history), on one backend.
//
//   bench_history_join URL [joins] [last]
//
// The channel first gets 1000 messages of 64 bytes. Each join subscribes, (with
// `last`) receives the N events, and unsubscribes, so the next join reaches the broker
// again. Prints p50 and p99 of each, in microseconds.

#include "latency.hpp"

#include <broadcaster/broadcaster.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <chrono>
#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

namespace {

namespace asio = boost::asio;
using asio::use_awaitable;
using bench::clock_type;
using bench::percentile;

struct results {
    std::vector<double> plain_us;
    std::vector<double> with_history_us;
};

double since_us(clock_type::time_point start) {
    return std::chrono::duration<double, std::micro>(clock_type::now() - start).count();
}

asio::awaitable<void> measure(std::string url, int joins, std::size_t last, results& out) {
    auto executor = co_await asio::this_coro::executor;
    broadcaster::broadcast bc(executor, url);
    co_await bc.async_connect(use_awaitable);
    const std::string channel = "history-join-bench";
    for (int i = 0; i < 1000; ++i) {
        co_await bc.async_publish(channel, std::string(64, 'x'), use_awaitable);
    }
    for (int i = 0; i < joins; ++i) {
        {
            const auto start = clock_type::now();
            auto sub = co_await bc.async_subscribe(channel, use_awaitable);
            out.plain_us.push_back(since_us(start));
        }
        broadcaster::subscribe_options options;
        options.last = last;
        const auto start = clock_type::now();
        auto sub = co_await bc.async_subscribe(channel, options, use_awaitable);
        for (std::size_t n = 0; n < last; ++n) {
            co_await sub.async_receive(use_awaitable);
        }
        out.with_history_us.push_back(since_us(start));
    }
    co_await bc.async_disconnect(use_awaitable);
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 2) {
        std::cerr << "usage: bench_history_join URL [joins] [last]\n";
        return 2;
    }
    const std::string url = argv[1];
    const int joins = argc > 2 ? std::stoi(argv[2]) : 500;
    const std::size_t last = argc > 3 ? std::stoul(argv[3]) : 50;
    asio::io_context io(1);
    results out;
    asio::co_spawn(io, measure(url, joins, last, out), [](std::exception_ptr e) {
        if (e) {
            std::rethrow_exception(e);
        }
    });
    io.run();
    std::printf(
        "%s: plain subscribe p50 %.0f us p99 %.0f us; subscribe with last %zu "
        "(until the %zu-th event) p50 %.0f us p99 %.0f us\n",
        broadcaster::redact_url(url).c_str(), percentile(out.plain_us, 0.5),
        percentile(out.plain_us, 0.99), last, last, percentile(out.with_history_us, 0.5),
        percentile(out.with_history_us, 0.99));
}
