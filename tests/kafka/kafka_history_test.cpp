// kafka:// history beyond the conformance suite: positions it cannot have given, a
// subscriber (live and `since`) across an outage of every broker, and a subscriber
// that falls behind retention, which must end with history_gap, never skip silently.

#include "history_position.hpp"
#include "test_servers.hpp"
#include "test_support.hpp"

#include <boost/asio/as_tuple.hpp>

#include <functional>

namespace broadcaster::test {
namespace {

using asio::use_awaitable;
using boost::system::error_code;

subscribe_options since(std::string position, std::size_t capacity = 100000) {
    subscribe_options options(capacity);
    options.since = std::move(position);
    return options;
}

TEST(kafka_history, refuses_positions_it_cannot_have_given) {
    run_async_test([&](asio::io_context& io) -> asio::awaitable<void> {
        broadcast bc(io, kafka_test_url());
        co_await bc.async_connect(use_awaitable);
        const auto channel = unique_name("bad");
        co_await bc.async_publish(channel, "one", use_awaitable);
        const auto kept = co_await bc.async_history(channel, 1, use_awaitable);
        BROADCASTER_REQUIRE(kept.size() == 1);
        const std::string partition(kept[0].position().substr(0, kept[0].position().find('-')));
        const std::vector<std::string> refused{
            "1", "not-a-position", partition + "-1", partition + "-999999", "9999-0", "-1"};
        for (const auto& position : refused) {
            auto [ec, sub] = co_await bc.async_subscribe(channel, since(position),
                                                         asio::as_tuple(use_awaitable));
            EXPECT_EQ(ec, error::invalid_position) << position;
        }
        // The last one given out is a position to resume from: nothing after it yet.
        auto at_end = co_await bc.async_subscribe(channel, since(std::string(kept[0].position())),
                                                  use_awaitable);
        co_await bc.async_publish(channel, "two", use_awaitable);
        EXPECT_EQ((co_await receive(at_end)).message(), "two");
    });
}

// A live subscriber and one resumed with `since` keep receiving while a publisher keeps
// publishing through 2 s with every broker down: each gets every message once, in
// order, with increasing positions.
TEST(kafka_history, subscribers_resume_by_themselves_after_an_outage) {
    kafka_mock cluster;
    run_async_test(
        [&](asio::io_context& io) -> asio::awaitable<void> {
            broadcast publisher(io, cluster.url());
            broadcast live_side(io, cluster.url());
            broadcast resumed_side(io, cluster.url());
            co_await publisher.async_connect(use_awaitable);
            co_await live_side.async_connect(use_awaitable);
            co_await resumed_side.async_connect(use_awaitable);
            const auto channel = unique_name("outage");
            auto live = co_await live_side.async_subscribe(channel, subscribe_options(100000),
                                                           use_awaitable);
            std::vector<event> seen;  // by `live`
            const auto take = [&]() -> asio::awaitable<void> {
                seen.push_back(co_await receive(live, 15s));
            };

            int sent = 0;
            int acknowledged = 0;
            std::vector<std::string> failures;
            const auto publish_one = [&] {
                publisher.async_publish(channel, std::to_string(sent++), [&](error_code ec) {
                    ++acknowledged;
                    if (ec) {
                        failures.push_back(ec.message());
                    }
                });
            };
            for (int i = 0; i < 20; ++i) {
                publish_one();
            }
            for (int i = 0; i < 10; ++i) {
                co_await take();
            }
            // Resumed after message 4 while the rest is still on its way.
            auto resumed = co_await resumed_side.async_subscribe(
                channel, since(std::string(seen[4].position())), use_awaitable);

            asio::steady_timer pace(io);
            const auto started = std::chrono::steady_clock::now();
            bool down = false;
            bool up = false;
            for (;;) {
                const auto elapsed = std::chrono::steady_clock::now() - started;
                if (!down && elapsed >= 500ms) {
                    cluster.broker_down();
                    down = true;
                } else if (!up && elapsed >= 2500ms) {
                    cluster.broker_up();
                    up = true;
                } else if (elapsed >= 4s) {
                    break;
                }
                publish_one();
                pace.expires_after(2ms);
                co_await pace.async_wait(use_awaitable);
            }
            co_await eventually([&] { return acknowledged == sent; }, 20s);
            EXPECT_TRUE(failures.empty())
                << failures.size() << " of " << sent << " publishes failed: " << failures.front();
            while (static_cast<int>(seen.size()) < sent) {
                co_await take();
            }
            for (int i = 0; i < sent; ++i) {
                BROADCASTER_REQUIRE(seen[i].message() == std::to_string(i));
                BROADCASTER_REQUIRE(i == 0 ||
                                    *detail::parse_numeric_position(seen[i - 1].position()) <
                                        *detail::parse_numeric_position(seen[i].position()));
            }
            for (int i = 5; i < sent; ++i) {
                const auto ev = co_await receive(resumed, 15s);
                BROADCASTER_REQUIRE(ev.message() == std::to_string(i));
                BROADCASTER_REQUIRE(ev.position() == seen[i].position());
            }
            // Nothing twice.
            co_await publisher.async_publish(channel, "last", use_awaitable);
            EXPECT_EQ((co_await receive(live, 10s)).message(), "last");
            EXPECT_EQ((co_await receive(resumed, 10s)).message(), "last");
        },
        60s);
}

// Runs `io` until `done()`; false after `timeout`.
bool run_until(asio::io_context& io, const std::function<bool()>& done,
               std::chrono::milliseconds timeout = 20s) {
    const auto until = std::chrono::steady_clock::now() + timeout;
    io.restart();
    while (!done() && std::chrono::steady_clock::now() < until) {
        io.run_one_until(until);
        if (io.stopped()) {
            io.restart();
        }
    }
    return done();
}

// The subscriber's io_context is not run while 1 MiB messages fill the mock's
// retention (5 MiB per partition): its consumer, allowed to hold one message ahead of
// us, stops fetching after the first, and the broker deletes the offsets it was to
// fetch next. When the subscriber runs again it gets what it had, then history_gap.
TEST(kafka_history, a_subscriber_behind_retention_ends_with_history_gap) {
    kafka_mock cluster;
    asio::io_context publisher_io;
    asio::io_context subscriber_io;
    broadcast publisher(publisher_io, cluster.url());
    broadcast receiver(subscriber_io, cluster.url() + "?consumer.queued.max.messages.kbytes=1");
    const auto channel = unique_name("behind");

    int connected = 0;
    publisher.async_connect([&](error_code ec) { connected += ec ? 100 : 1; });
    receiver.async_connect([&](error_code ec) { connected += ec ? 100 : 1; });
    ASSERT_TRUE(run_until(publisher_io, [&] { return connected >= 1; }));
    ASSERT_TRUE(run_until(subscriber_io, [&] { return connected >= 2; }));
    ASSERT_EQ(connected, 2);
    subscriber sub;
    bool subscribed = false;
    receiver.async_subscribe(channel, subscribe_options(100), [&](error_code ec, subscriber s) {
        EXPECT_FALSE(ec) << ec.message();
        sub = std::move(s);
        subscribed = true;
    });
    ASSERT_TRUE(run_until(subscriber_io, [&] { return subscribed; }));
    ASSERT_TRUE(sub.is_open());

    constexpr int count = 10;
    const std::string filler(1024 * 1024, 'x');
    for (int i = 0; i < count; ++i) {
        bool acknowledged = false;
        publisher.async_publish(channel, std::to_string(i) + ":" + filler, [&](error_code ec) {
            EXPECT_FALSE(ec) << ec.message();
            acknowledged = true;
        });
        ASSERT_TRUE(run_until(publisher_io, [&] { return acknowledged; }));
    }

    std::vector<event> got;
    error_code ended;
    std::function<void()> next = [&] {
        sub.async_receive([&](error_code ec, event ev) {
            if (ec) {
                ended = ec;
                return;
            }
            got.push_back(std::move(ev));
            next();
        });
    };
    next();
    ASSERT_TRUE(run_until(subscriber_io, [&] { return bool(ended); }));
    EXPECT_EQ(ended, error::history_gap);
    // What it got is the start of what was published, in order; the rest was deleted.
    ASSERT_LT(got.size(), std::size_t(count));
    for (std::size_t i = 0; i < got.size(); ++i) {
        EXPECT_EQ(got[i].message().substr(0, got[i].message().find(':')), std::to_string(i));
    }

    // Resuming from there is a gap too; what is kept can still be had.
    if (!got.empty()) {
        error_code resumed_ec;
        bool done = false;
        receiver.async_subscribe(channel, since(std::string(got.back().position())),
                                 [&](error_code ec, subscriber) {
                                     resumed_ec = ec;
                                     done = true;
                                 });
        ASSERT_TRUE(run_until(subscriber_io, [&] { return done; }));
        EXPECT_EQ(resumed_ec, error::history_gap);
    }
    std::vector<event> recent;
    bool done = false;
    receiver.async_history(channel, 2, [&](error_code ec, std::vector<event> events) {
        EXPECT_FALSE(ec) << ec.message();
        recent = std::move(events);
        done = true;
    });
    ASSERT_TRUE(run_until(subscriber_io, [&] { return done; }));
    ASSERT_EQ(recent.size(), 2u);
    EXPECT_EQ(recent[1].message().substr(0, 2), std::to_string(count - 1) + ":");
}

}  // namespace
}  // namespace broadcaster::test
