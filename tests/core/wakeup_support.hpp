#pragma once

// Helpers of the wake-up tests: a broadcast on memory:// whose io_context the test runs
// by hand.

#include "test_support.hpp"

#include <string>
#include <vector>

namespace broadcaster::test {

// Connects `bc` and subscribes `count` subscribers (queues of `capacity` events) to
// `channel`, running `io` until done.
inline std::vector<subscriber> subscribe_all(asio::io_context& io, broadcast& bc,
                                             const std::string& channel, int count,
                                             std::size_t capacity = 1024) {
    std::vector<subscriber> subs;
    subscribe_options options;
    options.capacity = capacity;
    bc.async_connect([&](boost::system::error_code ec) {
        ASSERT_FALSE(ec) << ec.message();
        for (int i = 0; i < count; ++i) {
            bc.async_subscribe(channel, options, [&](boost::system::error_code ec, subscriber sub) {
                ASSERT_FALSE(ec) << ec.message();
                subs.push_back(std::move(sub));
            });
        }
    });
    io.run();
    io.restart();
    return subs;
}

// Whether `io` has outstanding work once everything ready has run: poll() stops an
// io_context that has none.
inline bool has_work(asio::io_context& io) {
    io.restart();
    io.poll();
    return !io.stopped();
}

}  // namespace broadcaster::test
