#pragma once

// Helpers shared by the tests: run a coroutine under a deadline, unique names.

#include <broadcaster/broadcaster.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <functional>
#include <stdexcept>
#include <string>

namespace broadcaster::test {

namespace asio = boost::asio;
using namespace std::chrono_literals;

// Fails the running coroutine (and so the test) when `cond` is false.
#define BROADCASTER_REQUIRE(cond)                                                             \
    do {                                                                                      \
        if (!(cond)) {                                                                        \
            throw std::runtime_error(std::string(__FILE__) + ":" + std::to_string(__LINE__) + \
                                     ": requirement failed: " #cond);                         \
        }                                                                                     \
    } while (false)

// A name no other test (or earlier run against the same broker) uses.
// Descriptors open in this process: a test that frees everything leaves the count as
// it found it.
inline std::size_t open_fds() {
    return static_cast<std::size_t>(
        std::distance(std::filesystem::directory_iterator("/proc/self/fd"),
                      std::filesystem::directory_iterator{}));
}

// Sockets open in this process (TCP, Unix): none of a broadcast's may outlive it or
// its shutdown.
inline std::size_t open_sockets() {
    std::size_t n = 0;
    for (const auto& entry : std::filesystem::directory_iterator("/proc/self/fd")) {
        std::error_code ec;
        const auto target = std::filesystem::read_symlink(entry.path(), ec);
        if (!ec && target.string().rfind("socket:", 0) == 0) {
            ++n;
        }
    }
    return n;
}

inline std::string unique_name(const std::string& prefix = "test") {
    static std::atomic<int> counter{0};
    const auto now = std::chrono::steady_clock::now().time_since_epoch().count();
    return prefix + "-" + std::to_string(now % 1'000'000'000) + "-" + std::to_string(++counter);
}

// Runs `body(io)` as a coroutine on `io` (with `threads` threads) and fails the test if
// it throws or does not finish within `deadline`.
inline void run_async_test(std::function<asio::awaitable<void>(asio::io_context&)> body,
                           std::chrono::seconds deadline = 30s, int threads = 1) {
    asio::io_context io(threads);
    std::atomic<bool> done{false};
    std::exception_ptr failure;
    asio::co_spawn(io, body(io), [&](std::exception_ptr e) {
        failure = e;
        done = true;
    });
    const auto until = std::chrono::steady_clock::now() + deadline;
    std::vector<std::thread> pool;
    for (int i = 1; i < threads; ++i) {
        pool.emplace_back([&] { io.run_until(until); });
    }
    while (!done && std::chrono::steady_clock::now() < until) {
        io.run_one_until(until);
    }
    // Let shutdown work (disconnects posted by destructors) finish.
    io.run_for(2s);
    io.stop();
    for (auto& t : pool) {
        t.join();
    }
    ASSERT_TRUE(done) << "the test did not finish within " << deadline.count() << " s";
    if (failure) {
        try {
            std::rethrow_exception(failure);
        } catch (const std::exception& e) {
            FAIL() << "the test failed: " << e.what();
        }
    }
}

// Waits, without blocking the executor, until `condition` holds; throws after `timeout`.
// For state that has no completion to wait on (e.g. a counter reaching a value).
inline asio::awaitable<void> eventually(std::function<bool()> condition,
                                        std::chrono::milliseconds timeout = 5s) {
    asio::steady_timer timer(co_await asio::this_coro::executor);
    const auto until = std::chrono::steady_clock::now() + timeout;
    while (!condition()) {
        if (std::chrono::steady_clock::now() > until) {
            throw std::runtime_error("condition not reached in time");
        }
        timer.expires_after(1ms);
        co_await timer.async_wait(asio::use_awaitable);
    }
}

// Collects a broadcast's state changes, so a test can wait for one.
struct state_log {
    std::vector<connection_state> states;
    void attach(broadcast& bc) {
        bc.on_state_change(
            [this](connection_state s, boost::system::error_code) { states.push_back(s); });
    }
    bool saw(connection_state s) const {
        return std::find(states.begin(), states.end(), s) != states.end();
    }
};

// Receives one event from `sub`, throwing (and so failing the test) after `timeout`.
inline asio::awaitable<event> receive(subscriber& sub, std::chrono::milliseconds timeout = 5s) {
    using namespace asio::experimental::awaitable_operators;
    asio::steady_timer timer(co_await asio::this_coro::executor, timeout);
    auto result =
        co_await (sub.async_receive(asio::use_awaitable) || timer.async_wait(asio::use_awaitable));
    if (result.index() != 0) {
        throw std::runtime_error("no event within the timeout");
    }
    co_return std::get<0>(std::move(result));
}

// Publishes `count` numbered messages on `channel` without waiting for each, then
// waits until every one was acknowledged.
inline asio::awaitable<void> publish_numbered(broadcast& bc, const std::string& channel,
                                              int count) {
    int acknowledged = 0;
    boost::system::error_code first_error;
    for (int i = 0; i < count; ++i) {
        bc.async_publish(channel, std::to_string(i), [&](boost::system::error_code ec) {
            ++acknowledged;
            if (ec && !first_error) {
                first_error = ec;
            }
        });
    }
    co_await eventually([&] { return acknowledged == count; });
    EXPECT_FALSE(first_error) << first_error.message();
}

}  // namespace broadcaster::test
