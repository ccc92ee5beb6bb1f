// The Postgres backend against input it does not control: notifications that other
// clients of the same database send on a subscribed channel. Plain NOTIFY is how
// other apps talk to a broadcaster instance, so whatever they send must neither cost
// the connection nor the notifications of other channels.

#include "backend_access.hpp"
#include "backends/postgres/postgres_backend.hpp"
#include "test_servers.hpp"
#include "test_support.hpp"

#include <filesystem>
#include <set>

namespace broadcaster::test {
namespace {

using boost::system::error_code;

struct hostile_sink final : backend_sink {
    std::vector<event> events;
    std::vector<connection_state> states;
    void deliver(event ev) override { events.push_back(std::move(ev)); }
    void state_changed(connection_state state, error_code) override { states.push_back(state); }
    bool received(const std::string& channel, const std::string& message) const {
        return std::any_of(events.begin(), events.end(), [&](const event& ev) {
            return ev.channel() == channel && ev.message() == message;
        });
    }
};

// A cluster of its own: the test sends NOTIFYs with psql, as another app would.
postgres_server& hostile_server() {
    static postgres_server server;
    return server;
}

asio::awaitable<error_code> call(std::function<void(backend::completion_handler)> op) {
    std::optional<error_code> result;
    op([&](error_code ec) { result = ec; });
    co_await eventually([&] { return result.has_value(); }, 10s);
    co_return *result;
}

// A payload starting with the reference marker (0x1F) that is no reference of ours
// made the listener's payload fetch fail ("invalid input syntax for type bigint", or
// "relation does not exist" before any large message was stored), and that failure
// was taken for a lost connection: a reconnect per such NOTIFY, and the notifications
// sent meanwhile lost for every channel.
TEST(postgres_hostile, foreign_marker_payloads_cost_neither_connection_nor_messages) {
    auto& server = hostile_server();
    // A payload table that does not exist yet: a well-formed reference fails too.
    const auto url = server.url() + "?payload_table=" + unique_name("absent").substr(0, 40);
    run_async_test([&](asio::io_context& io) -> asio::awaitable<void> {
        auto sink = std::make_shared<hostile_sink>();
        backend_config config{url, url, {}};
        auto pg = detail::make_postgres_backend(config);
        detail::backend_access::attach(*pg, io.get_executor(), sink);
        BROADCASTER_REQUIRE(!co_await call([&](auto h) { pg->async_connect(std::move(h)); }));
        const auto channel = unique_name("hostile");
        const auto other = unique_name("bystander");
        BROADCASTER_REQUIRE(
            !co_await call([&](auto h) { pg->async_subscribe(channel, std::move(h)); }));
        BROADCASTER_REQUIRE(
            !co_await call([&](auto h) { pg->async_subscribe(other, std::move(h)); }));

        // All in one transaction, so they arrive together, with the bystander's after.
        const std::string hostile = "BEGIN; SELECT pg_notify('" + channel +
                                    "', chr(31) || 'not a number'); SELECT pg_notify('" + channel +
                                    "', chr(31) || '99999999999999999999999'); SELECT "
                                    "pg_notify('" +
                                    channel + "', chr(31) || '1'); SELECT pg_notify('" + other +
                                    "', 'still here'); COMMIT;";
        BROADCASTER_REQUIRE(server.sql(hostile) == 0);
        co_await eventually([&] { return sink->received(other, "still here"); }, 10s);
        // Not references: delivered as sent.
        EXPECT_TRUE(sink->received(channel, "\x1fnot a number"));
        EXPECT_TRUE(sink->received(channel,
                                   "\x1f"
                                   "99999999999999999999999"));
        EXPECT_TRUE(sink->states.empty()) << "the listener's connection was dropped";

        // And the connection still carries our own messages, inline and stored.
        const std::string large(9000, 'x');
        EXPECT_FALSE(
            co_await call([&](auto h) { pg->async_publish(channel, "ok", std::move(h)); }));
        EXPECT_FALSE(
            co_await call([&](auto h) { pg->async_publish(channel, large, std::move(h)); }));
        co_await eventually([&] { return sink->received(channel, large); }, 10s);
        EXPECT_TRUE(sink->received(channel, "ok"));
        EXPECT_TRUE(sink->states.empty()) << "the listener's connection was dropped";
        co_await call([&](auto h) { pg->async_disconnect(std::move(h)); });
    });
}

// Both sessions killed while LISTENs and UNLISTENs of many channels are queued and
// publishes flow: every command completes once, and after the reconnect exactly the
// channels whose subscribe succeeded (and that were not unsubscribed) are listened to.
TEST(postgres_hostile, every_session_killed_mid_queue_leaves_exactly_the_confirmed_channels) {
    auto& server = hostile_server();
    const auto url = server.url() + "?reconnect_min_ms=20&reconnect_max_ms=200";
    run_async_test([&](asio::io_context& io) -> asio::awaitable<void> {
        auto sink = std::make_shared<hostile_sink>();
        backend_config config{url, url, {}};
        auto pg = detail::make_postgres_backend(config);
        detail::backend_access::attach(*pg, io.get_executor(), sink);
        BROADCASTER_REQUIRE(!co_await call([&](auto h) { pg->async_connect(std::move(h)); }));
        constexpr int n = 40;
        const auto prefix = unique_name("killed");
        const auto name = [&](int i) { return prefix + "-" + std::to_string(i); };
        for (int i = 0; i < n; ++i) {
            BROADCASTER_REQUIRE(
                !co_await call([&](auto h) { pg->async_subscribe(name(i), std::move(h)); }));
        }
        // Queued at once: unsubscribe the even ones, subscribe n new ones.
        std::vector<std::optional<error_code>> results(2 * n);
        std::vector<int> calls(2 * n, 0);
        const auto track = [&](int i) {
            return [&, i](error_code ec) {
                ++calls[i];
                results[i] = ec;
            };
        };
        for (int i = 0; i < n; ++i) {
            if (i % 2 == 0) {
                pg->async_unsubscribe(name(i), track(i));
            }
            pg->async_subscribe(name(n + i), track(n + i));
            pg->async_publish(name(i), "during", [](error_code) {});
        }
        BROADCASTER_REQUIRE(
            server.sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid <> "
                       "pg_backend_pid() AND backend_type = 'client backend'") == 0);
        co_await eventually(
            [&] {
                for (int i = 0; i < 2 * n; ++i) {
                    if ((i >= n || i % 2 == 0) && calls[i] == 0) {
                        return false;
                    }
                }
                return true;
            },
            10s);
        int failed = 0;
        std::set<std::string> listened;
        for (int i = 0; i < 2 * n; ++i) {
            if (i < n && i % 2 == 1) {
                listened.insert(name(i));  // untouched
                continue;
            }
            EXPECT_EQ(calls[i], 1) << "command " << i;
            if (i < n) {
                EXPECT_FALSE(*results[i]) << "an unsubscribe is done either way";
            } else if (*results[i]) {
                EXPECT_EQ(*results[i], error::connection_lost) << results[i]->message();
                ++failed;
            } else {
                listened.insert(name(i));
            }
        }
        EXPECT_GT(failed, 0) << "the outage came too late to test anything";
        co_await eventually(
            [&] {
                return !sink->states.empty() && sink->states.back() == connection_state::connected;
            },
            10s);
        sink->events.clear();
        // One publisher connection, in order: once the last has arrived, all have.
        for (int i = 0; i < 2 * n; ++i) {
            EXPECT_FALSE(
                co_await call([&](auto h) { pg->async_publish(name(i), "after", std::move(h)); }));
        }
        EXPECT_FALSE(
            co_await call([&](auto h) { pg->async_publish(name(1), "last", std::move(h)); }));
        co_await eventually([&] { return sink->received(name(1), "last"); }, 10s);
        for (int i = 0; i < 2 * n; ++i) {
            EXPECT_EQ(sink->received(name(i), "after"), listened.count(name(i)) == 1)
                << name(i) << (i < n ? " (subscribed before)" : " (subscribed during)");
        }
        co_await call([&](auto h) { pg->async_disconnect(std::move(h)); });
    });
}

// A burst of publishes that takes longer than publish_timeout_ms to go out, on a server
// that answers every statement at once: the connection is healthy. The deadline was
// counted from when a publish was queued, so the one being sent after a long wait in
// the queue was taken for an unanswered one: the connections were dropped, the rest of
// the burst failed and notifications were lost.
TEST(postgres_hostile, a_long_queue_of_publishes_is_no_outage) {
    // A batch takes tens of milliseconds, far under the timeout, and the whole queue
    // (15000 stored payloads) a few seconds, far over it.
    const auto url = hostile_server().url() + "?publish_timeout_ms=1000";
    run_async_test(
        [&](asio::io_context& io) -> asio::awaitable<void> {
            auto sink = std::make_shared<hostile_sink>();
            backend_config config{url, url, {}};
            auto pg = detail::make_postgres_backend(config);
            detail::backend_access::attach(*pg, io.get_executor(), sink);
            BROADCASTER_REQUIRE(!co_await call([&](auto h) { pg->async_connect(std::move(h)); }));
            // Each goes through the payload table: one round trip per publish.
            constexpr int count = 15000;
            const std::string message(8000, 'x');
            const auto channel = unique_name("burst");
            int done = 0;
            int failed = 0;
            const auto start = std::chrono::steady_clock::now();
            for (int i = 0; i < count; ++i) {
                pg->async_publish(channel, message, [&](error_code ec) {
                    ++done;
                    failed += ec ? 1 : 0;
                });
            }
            co_await eventually([&] { return done == count; }, 60s);
            const auto took = std::chrono::steady_clock::now() - start;
            EXPECT_GT(took, 1s) << "too fast to test anything";
            EXPECT_EQ(failed, 0);
            EXPECT_TRUE(sink->states.empty()) << "the connection was taken for dead";
            co_await call([&](auto h) { pg->async_disconnect(std::move(h)); });
        },
        90s);
}

// A disconnect (or the io_context's end) at every step of connecting: the connect
// completes once (aborted or not), the disconnect once, and no socket stays open.
TEST(postgres_hostile, disconnect_or_teardown_at_every_step_of_connecting_leaks_nothing) {
    const auto url = hostile_server().url();
    const auto before = open_fds();
    for (const bool destroy_io : {false, true}) {
        for (int steps = 0; steps < 40; ++steps) {
            int connects = 0;
            int disconnects = 0;
            {
                asio::io_context io;
                auto sink = std::make_shared<hostile_sink>();
                backend_config config{url, url, {}};
                auto pg = detail::make_postgres_backend(config);
                detail::backend_access::attach(*pg, io.get_executor(), sink);
                pg->async_connect([&](error_code) { ++connects; });
                for (int i = 0; i < steps && io.run_one_for(20ms) > 0; ++i) {
                }
                if (destroy_io) {
                    pg.reset();
                    continue;  // the io_context goes without running again
                }
                pg->async_disconnect([&](error_code ec) {
                    EXPECT_FALSE(ec);
                    ++disconnects;
                });
                io.run_for(2s);  // returns once there is nothing left to do
                EXPECT_EQ(connects, 1) << steps << " steps";
                EXPECT_EQ(disconnects, 1) << steps << " steps";
            }
            EXPECT_LE(connects, 1) << steps << " steps";
            EXPECT_EQ(open_fds(), before)
                << steps << " steps, " << (destroy_io ? "io_context destroyed" : "disconnected");
        }
    }
}

}  // namespace
}  // namespace broadcaster::test
