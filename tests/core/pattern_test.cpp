// Pattern subscriptions in the core: what it refuses before asking the backend, and
// a backend without patterns (memory://). nats:// has them (tests/nats).

#include "test_support.hpp"

#include <boost/asio/as_tuple.hpp>

namespace broadcaster::test {
namespace {

using asio::use_awaitable;

subscribe_options patterns() {
    subscribe_options options;
    options.pattern = true;
    return options;
}

TEST(patterns, a_backend_without_patterns_refuses_them_distinctly) {
    run_async_test([&](asio::io_context& io) -> asio::awaitable<void> {
        broadcast bc(io, "memory://");
        co_await bc.async_connect(use_awaitable);
        auto [ec, sub] =
            co_await bc.async_subscribe("a.*", patterns(), asio::as_tuple(use_awaitable));
        EXPECT_EQ(ec, error::patterns_not_supported);
        EXPECT_EQ(ec, condition::configuration);
        EXPECT_EQ(bc.stats().active_channels, 0u);
        EXPECT_EQ(bc.stats().active_subscribers, 0u);
        // The channel of the same name is another thing, and works.
        auto channel = co_await bc.async_subscribe("a.*", use_awaitable);
        co_await bc.async_publish("a.*", "x", use_awaitable);
        EXPECT_EQ((co_await receive(channel)).message(), "x");
    });
}

TEST(patterns, history_does_not_apply_to_patterns) {
    run_async_test([&](asio::io_context& io) -> asio::awaitable<void> {
        broadcast bc(io, "memory://?history=10");
        co_await bc.async_connect(use_awaitable);
        auto options = patterns();
        options.last = 5;
        auto [ec, sub] = co_await bc.async_subscribe("a.*", options, asio::as_tuple(use_awaitable));
        EXPECT_EQ(ec, boost::system::errc::invalid_argument);
    });
}

}  // namespace
}  // namespace broadcaster::test
