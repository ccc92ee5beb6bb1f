// The Redis backend under concurrency, against a real redis-server: many subscribes
// at once, the same channel subscribed and dropped in a loop while messages flow, a
// server restart in the middle of that, and a broadcast destroyed while busy.

#include "delay_proxy.hpp"
#include "own_redis.hpp"
#include "test_servers.hpp"
#include "test_support.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/detached.hpp>

#include <filesystem>
#include <map>
#include <set>

namespace broadcaster::test {
namespace {

using asio::use_awaitable;
using boost::system::error_code;

// 20 multi-channel subscribes over 8 shared channels, issued at once: each completes
// once, successfully, and then receives exactly its channels' messages.
TEST(redis_concurrency, concurrent_multi_channel_subscribes_all_complete_and_receive) {
    run_async_test([&](asio::io_context& io) -> asio::awaitable<void> {
        broadcast bc(io, redis_test_url());
        co_await bc.async_connect(use_awaitable);
        std::vector<std::string> pool;
        for (int i = 0; i < 8; ++i) {
            pool.push_back(unique_name("multi"));
        }
        constexpr int count = 20;
        std::vector<std::vector<std::string>> wanted(count);
        std::vector<int> calls(count, 0);
        std::vector<error_code> results(count);
        std::vector<subscriber> subs(count);
        for (int i = 0; i < count; ++i) {
            wanted[i] = {pool[i % 8], pool[(i + 1) % 8], pool[(i + 3) % 8]};
            bc.async_subscribe(channel_list(wanted[i]), [&, i](error_code ec, subscriber s) {
                ++calls[i];
                results[i] = ec;
                subs[i] = std::move(s);
            });
        }
        co_await eventually(
            [&] { return std::all_of(calls.begin(), calls.end(), [](int c) { return c > 0; }); });
        for (int i = 0; i < count; ++i) {
            BROADCASTER_REQUIRE(!results[i]);
        }
        for (const auto& name : pool) {
            co_await bc.async_publish(name, name, use_awaitable);
        }
        for (int i = 0; i < count; ++i) {
            std::set<std::string> got;
            for (std::size_t n = 0; n < wanted[i].size(); ++n) {
                const auto ev = co_await receive(subs[i]);
                EXPECT_EQ(ev.channel(), ev.message());
                got.insert(std::string(ev.message()));
            }
            EXPECT_EQ(got, std::set<std::string>(wanted[i].begin(), wanted[i].end()))
                << "subscriber " << i;
            EXPECT_EQ(calls[i], 1) << "subscriber " << i;
        }
    });
}

// One channel, subscribed and dropped 100 times in a row while another broadcast
// publishes numbered messages without pause. Each subscriber, once confirmed, gets
// every message published after its confirmation, in order.
TEST(redis_concurrency, churn_each_confirmed_subscriber_gets_what_was_published_after) {
    run_async_test([&](asio::io_context& io) -> asio::awaitable<void> {
        broadcast publisher(io, redis_test_url());
        broadcast bc(io, redis_test_url());
        co_await publisher.async_connect(use_awaitable);
        co_await bc.async_connect(use_awaitable);
        const auto channel = unique_name("churn");

        int next = 0;  // the number of the next publish to start
        bool stop = false;
        bool publishing = true;
        asio::co_spawn(
            io,
            [&]() -> asio::awaitable<void> {
                while (!stop) {
                    co_await publisher.async_publish(channel, std::to_string(next++),
                                                     use_awaitable);
                }
                publishing = false;
            },
            asio::detached);

        for (int round = 0; round < 100; ++round) {
            auto sub = co_await bc.async_subscribe(channel, use_awaitable);
            const int first = next;  // published after the confirmation from here on
            int expected = first;
            while (expected < first + 3) {
                const int got = std::stoi(std::string((co_await receive(sub)).message()));
                if (got < first) {
                    continue;  // published before the confirmation: may or may not come
                }
                BROADCASTER_REQUIRE(got == expected);
                ++expected;
            }
        }  // each round's subscriber is dropped right before the next subscribes
        stop = true;
        co_await eventually([&] { return !publishing; });
    });
}

// Four workers on two channels subscribe, publish a probe from the same broadcast
// (again if the publish failed), wait for it and drop the subscriber, in a loop; the
// server is killed in the middle and restarted 300 ms later. Every subscribe completes
// exactly once; every successful one receives its probe (a publish made during the
// outage waits until the subscriptions are restored), and a subscriber kept across
// the outage receives what the broadcast published during it.
TEST(redis_concurrency, outage_during_churn_ends_consistent) {
    own_redis redis;
    run_async_test(
        [&](asio::io_context& io) -> asio::awaitable<void> {
            delay_proxy proxy(io, redis.port, 0ms);
            broadcast bc(io, "redis://127.0.0.1:" + std::to_string(proxy.port()) +
                                 "?reconnect_min_ms=20&reconnect_max_ms=100&"
                                 "publish_timeout_ms=20000");
            state_log log;
            log.attach(bc);
            co_await bc.async_connect(use_awaitable);
            const std::vector<std::string> channels{unique_name("outage-churn"),
                                                    unique_name("outage-churn")};

            std::vector<int> calls;  // completions per subscribe started
            int probes_lost = 0;
            // Redis answers a PUBLISH before it writes the message to subscribers: a probe
            // whose publish began before the outage may be lost with it, as the
            // reconnecting -> connected pair tells the app (docs/backends/redis.md). One
            // per worker at most; any other loss is one.
            int probes_cut_by_the_outage = 0;
            int subscribes_ok = 0;
            int subscribes_failed = 0;
            int publishes_failed = 0;
            bool stop = false;
            int running = 4;
            asio::steady_timer pause(io);
            const auto worker = [&](int w) -> asio::awaitable<void> {
                for (int round = 0; !stop; ++round) {
                    const auto id = calls.size();
                    calls.push_back(0);
                    // Shared: a second completion must not write into a finished frame.
                    auto result =
                        std::make_shared<std::optional<std::pair<error_code, subscriber>>>();
                    bc.async_subscribe(channels[w % 2],
                                       [&calls, id, result](error_code ec, subscriber s) {
                                           ++calls[id];
                                           result->emplace(ec, std::move(s));
                                       });
                    co_await eventually([&] { return result->has_value(); }, 20s);
                    if ((*result)->first) {
                        ++subscribes_failed;
                        asio::steady_timer retry(io, 5ms);
                        co_await retry.async_wait(use_awaitable);
                        continue;
                    }
                    ++subscribes_ok;
                    auto sub = std::move((*result)->second);
                    const auto probe = "w" + std::to_string(w) + "-" + std::to_string(round);
                    const auto states_before_publish = log.states.size();
                    // A publish written when the connection dropped fails (Redis may or
                    // may not have it); the app publishes again, during the outage.
                    for (;;) {
                        auto [ec] = co_await bc.async_publish(channels[w % 2], probe,
                                                              asio::as_tuple(use_awaitable));
                        if (!ec) {
                            break;
                        }
                        ++publishes_failed;
                    }
                    try {
                        while ((co_await receive(sub, 10s)).message() != probe) {
                        }
                    } catch (const std::exception&) {
                        const bool outage_since =
                            std::find(log.states.begin() + states_before_publish, log.states.end(),
                                      connection_state::reconnecting) != log.states.end();
                        ++(outage_since ? probes_cut_by_the_outage : probes_lost);
                    }
                }
                --running;
            };
            for (int w = 0; w < 4; ++w) {
                asio::co_spawn(io, worker(w), asio::detached);
            }
            // A subscriber that stays across the outage, and publishes made during it
            // (whatever the workers happen to be doing then).
            auto held = co_await bc.async_subscribe(channels[0], use_awaitable);
            co_await eventually([&] { return subscribes_ok >= 40; }, 20s);
            redis.server->stop(SIGKILL);
            co_await eventually([&] { return log.saw(connection_state::reconnecting); });
            proxy.set_delay(300ms);  // the restore reaches Redis after the publishes sent early
            int outage_published = 0;
            for (int i = 0; i < 20; ++i) {
                bc.async_publish(channels[0], "outage-" + std::to_string(i),
                                 [&](error_code ec) { outage_published += ec ? 0 : 1; });
            }
            asio::steady_timer outage(io, 300ms);  // the outage's length, not a wait for state
            co_await outage.async_wait(use_awaitable);
            redis.server->start();
            co_await eventually([&] { return log.states.back() == connection_state::connected; },
                                20s);
            proxy.set_delay(0ms);
            co_await eventually([&] { return outage_published == 20; }, 20s);
            for (int i = 0; i < 20;) {  // in order, among the workers' probes
                const auto ev = co_await receive(held);
                if (ev.message().starts_with("outage-")) {
                    EXPECT_EQ(ev.message(), "outage-" + std::to_string(i));
                    ++i;
                }
            }
            const int before = subscribes_ok;
            co_await eventually([&] { return subscribes_ok >= before + 40; }, 20s);
            stop = true;
            co_await eventually([&] { return running == 0; }, 30s);

            EXPECT_EQ(probes_lost, 0);
            EXPECT_LE(probes_cut_by_the_outage, 4);
            EXPECT_EQ(bc.stats().reconnects, 1u);
            for (std::size_t i = 0; i < calls.size(); ++i) {
                EXPECT_EQ(calls[i], 1) << "subscribe " << i;
            }
            std::cout << "subscribes: " << subscribes_ok << " ok, " << subscribes_failed
                      << " failed; probes cut by the outage: " << probes_cut_by_the_outage
                      << "; probe publishes failed and made again: " << publishes_failed << "\n";
        },
        90s);
}

// Connects, starts subscribes and publishes, destroys the broadcast while they are
// in flight, then the io_context: nothing crashes, every socket is closed. Once
// without running the io_context again, once letting the posted work run first.
TEST(redis_concurrency, destroy_while_busy_leaks_nothing) {
    own_redis redis;
    for (const bool run_after : {false, true}) {
        const auto before = open_fds();
        for (int i = 0; i < 5; ++i) {
            asio::io_context io;
            auto bc = std::make_unique<broadcast>(io, redis.url());
            std::optional<error_code> connected;
            bc->async_connect([&](error_code ec) { connected = ec; });
            const auto until = std::chrono::steady_clock::now() + 10s;
            while (!connected && std::chrono::steady_clock::now() < until) {
                io.run_one_until(until);
            }
            ASSERT_TRUE(connected.has_value());
            ASSERT_FALSE(*connected) << connected->message();
            for (int n = 0; n < 10; ++n) {
                const auto channel = "busy-" + std::to_string(n);
                bc->async_subscribe(channel, [](error_code, subscriber) {});
                bc->async_publish(channel, "x", [](error_code) {});
            }
            io.poll();  // some of it reaches the sockets
            bc.reset();
            if (run_after) {
                io.run_for(200ms);
            }
        }  // the io_context goes, with whatever is still queued on it
        EXPECT_EQ(open_fds(), before) << (run_after ? "after running" : "without running");
    }
}

}  // namespace
}  // namespace broadcaster::test
