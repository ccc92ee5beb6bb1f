// The Kafka backend under concurrent use, against librdkafka's mock cluster:
// overlapping multi-channel subscribes, subscribe/unsubscribe churn while publishing,
// and a broadcast destroyed with work in flight.

#include "test_servers.hpp"
#include "test_support.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/detached.hpp>

#include <atomic>
#include <map>
#include <optional>

namespace broadcaster::test {
namespace {

using asio::use_awaitable;
using boost::system::error_code;

// Four multi-channel subscribes of overlapping channel sets, started together on two
// threads: each completes, and receives exactly the messages of its channels.
TEST(kafka_concurrency, overlapping_multi_channel_subscribes_all_complete_and_receive) {
    const auto url = kafka_test_url();
    run_async_test(
        [&](asio::io_context& io) -> asio::awaitable<void> {
            broadcast bc(io, url);
            co_await bc.async_connect(use_awaitable);
            const auto prefix = unique_name("overlap");
            const auto name = [&](int i) { return prefix + "-" + std::to_string(i); };
            // Subscriber s takes channels s*5 .. s*5+9: each shares five with the next.
            std::vector<std::vector<std::string>> sets(4);
            for (int s = 0; s < 4; ++s) {
                for (int c = s * 5; c < s * 5 + 10; ++c) {
                    sets[s].push_back(name(c));
                }
            }
            std::vector<std::optional<subscriber>> subs(4);
            int done = 0;
            for (int s = 0; s < 4; ++s) {
                bc.async_subscribe(sets[s], [&, s](error_code ec, subscriber sub) {
                    EXPECT_FALSE(ec) << ec.message();
                    subs[s] = std::move(sub);
                    ++done;
                });
            }
            co_await eventually([&] { return done == 4; }, 20s);
            for (int c = 0; c < 25; ++c) {
                co_await bc.async_publish(name(c), name(c), use_awaitable);
            }
            for (int s = 0; s < 4; ++s) {
                std::multiset<std::string> received;
                for (int i = 0; i < 10; ++i) {
                    received.insert(std::string((co_await receive(*subs[s])).message()));
                }
                EXPECT_EQ(received, std::multiset<std::string>(sets[s].begin(), sets[s].end()));
                EXPECT_FALSE(subs[s]->try_receive().has_value());
            }
        },
        60s, 2);
}

// The same channel subscribed and dropped again and again while another broadcast
// publishes on it: after every subscribe completes, what is published next arrives.
TEST(kafka_concurrency, churn_on_one_channel_while_publishing_loses_nothing_after_subscribe) {
    const auto url = kafka_test_url();
    run_async_test(
        [&](asio::io_context& io) -> asio::awaitable<void> {
            broadcast bc(io, url);
            // Shared with the publishing coroutine, which may still be waiting on its
            // timer when this one returns.
            struct shared_state {
                std::atomic<bool> stop{false};
                std::atomic<int> background{0};
            };
            const auto state = std::make_shared<shared_state>();
            const auto publisher = std::make_shared<broadcast>(io, url);
            co_await bc.async_connect(use_awaitable);
            co_await publisher->async_connect(use_awaitable);
            const auto channel = unique_name("churn");
            asio::co_spawn(
                io,
                [&io, state, publisher, channel]() -> asio::awaitable<void> {
                    asio::steady_timer pace(io);
                    while (!state->stop) {
                        co_await publisher->async_publish(channel, "noise", use_awaitable);
                        ++state->background;
                        pace.expires_after(1ms);
                        co_await pace.async_wait(use_awaitable);
                    }
                },
                asio::detached);
            for (int round = 0; round < 30; ++round) {
                auto sub =
                    co_await bc.async_subscribe(channel, subscribe_options(10000), use_awaitable);
                const auto marker = "marker-" + std::to_string(round);
                co_await bc.async_publish(channel, marker, use_awaitable);
                for (;;) {
                    const auto ev = co_await receive(sub, 10s);
                    if (ev.message() == marker) {
                        break;
                    }
                    BROADCASTER_REQUIRE(ev.message() == "noise");
                }
            }  // each round's subscriber leaves: the channel is unsubscribed
            state->stop = true;
            EXPECT_GT(state->background.load(), 0);
        },
        90s, 2);
}

// A broadcast destroyed with subscribes and publishes in flight, then its io_context
// (run a little, or not at all): nothing crashes or hangs.
TEST(kafka_concurrency, destroying_a_busy_broadcast_then_its_io_context_is_safe) {
    const auto url = kafka_test_url();
    for (int round = 0; round < 6; ++round) {
        asio::io_context io;
        auto bc = std::make_unique<broadcast>(io, url);
        std::optional<error_code> connected;
        bc->async_connect([&](error_code ec) { connected = ec; });
        const auto until = std::chrono::steady_clock::now() + 10s;
        while (!connected && std::chrono::steady_clock::now() < until) {
            io.run_one_until(until);
        }
        ASSERT_TRUE(connected.has_value());
        ASSERT_FALSE(*connected) << connected->message();
        const auto prefix = unique_name("busy");
        std::vector<std::string> channels;
        for (int c = 0; c < 20; ++c) {
            channels.push_back(prefix + "-" + std::to_string(c));
        }
        bc->async_subscribe(channels, [](error_code, subscriber) {});
        for (int i = 0; i < 200; ++i) {
            bc->async_publish(channels[i % channels.size()], "x", [](error_code) {});
        }
        // Let some of it reach librdkafka and the blocking threads.
        io.run_for(std::chrono::milliseconds(round * 5));
        bc.reset();
        if (round % 2 == 0) {
            io.run_for(50ms);
        }
    }  // each io_context destroyed here, maybe with handlers never run
}

}  // namespace
}  // namespace broadcaster::test
