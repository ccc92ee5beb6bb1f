// The Postgres backend under concurrent subscribes, churn, outages and teardown, on a
// real PostgreSQL 15 cluster. The backend-level tests drive the backend directly (no
// core in between), so the order of its operations is exactly the one written here.

#include "backend_access.hpp"
#include "backends/postgres/postgres_backend.hpp"
#include "test_servers.hpp"
#include "test_support.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>

#include <filesystem>
#include <map>
#include <optional>

namespace broadcaster::test {
namespace {

using asio::use_awaitable;
using boost::system::error_code;

constexpr const char* fast_reconnect = "?reconnect_min_ms=20&reconnect_max_ms=200";

// What a backend reports, recorded on its executor.
struct recording_sink final : backend_sink {
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

// Every completion handed to the backend, and how often each was called: twice is a
// defect, as is never.
struct completion_log {
    std::vector<int> calls;
    std::vector<error_code> results;
    std::vector<std::size_t> order;  // in the order they were called

    backend::completion_handler track() {
        const auto id = calls.size();
        calls.push_back(0);
        results.emplace_back();
        return [this, id](error_code ec) {
            ++calls[id];
            results[id] = ec;
            order.push_back(id);
        };
    }
    bool all_called() const {
        return std::all_of(calls.begin(), calls.end(), [](int n) { return n >= 1; });
    }
    void expect_each_called_once() const {
        for (std::size_t i = 0; i < calls.size(); ++i) {
            EXPECT_EQ(calls[i], 1) << "completion " << i;
        }
    }
};

// A Postgres backend attached to `io`, as a broadcast would attach it.
struct backend_under_test {
    std::shared_ptr<recording_sink> sink = std::make_shared<recording_sink>();
    std::unique_ptr<backend> pg;

    backend_under_test(asio::io_context& io, const std::string& url) {
        backend_config config{url, url, {}};
        pg = detail::make_postgres_backend(config);
        detail::backend_access::attach(*pg, io.get_executor(), sink);
    }
    asio::awaitable<void> connect() {
        completion_log log;
        pg->async_connect(log.track());
        co_await eventually([&] { return log.all_called(); }, 10s);
        BROADCASTER_REQUIRE(!log.results[0]);
    }
    asio::awaitable<error_code> publish(const std::string& channel, const std::string& message) {
        completion_log log;
        pg->async_publish(channel, message, log.track());
        co_await eventually([&] { return log.all_called(); }, 10s);
        co_return log.results[0];
    }
};

// Lets `turns` rounds of other work run: a backend's coroutines move on meanwhile (a
// LISTEN gets sent, a reply read), so that commands come in at every stage of the
// ones before them.
asio::awaitable<void> let_run(int turns) {
    for (int i = 0; i < turns; ++i) {
        co_await asio::post(co_await asio::this_coro::executor, use_awaitable);
    }
}

// ---- backend level ---------------------------------------------------------------

// Each LISTEN used to cancel every wait on the listener's socket, including the one
// of the LISTEN before it: that one failed as a lost connection and its completion was
// dropped.
TEST(postgres_concurrency, subscribes_issued_at_once_all_complete_and_all_receive) {
    const auto url = postgres_test_url();
    run_async_test([&](asio::io_context& io) -> asio::awaitable<void> {
        backend_under_test b(io, url);
        co_await b.connect();
        const auto prefix = unique_name("at-once");
        constexpr int count = 200;
        completion_log log;
        for (int i = 0; i < count; ++i) {
            b.pg->async_subscribe(prefix + "-" + std::to_string(i), log.track());
            co_await let_run(i % 5);  // some arrive while a LISTEN is under way
        }
        co_await eventually([&] { return log.all_called(); }, 20s);
        log.expect_each_called_once();
        for (int i = 0; i < count; ++i) {
            EXPECT_FALSE(log.results[i]) << i << ": " << log.results[i].message();
        }
        for (int i = 0; i < count; ++i) {
            EXPECT_FALSE(co_await b.publish(prefix + "-" + std::to_string(i), "hi"));
        }
        co_await eventually([&] { return b.sink->events.size() >= count; }, 10s);
        for (int i = 0; i < count; ++i) {
            EXPECT_TRUE(b.sink->received(prefix + "-" + std::to_string(i), "hi")) << i;
        }
        EXPECT_TRUE(b.sink->states.empty()) << "the connection was taken for lost";
    });
}

// Subscribe and unsubscribe of one channel, issued without waiting, with publishes in
// between: each completes once, in order, and the last one decides.
TEST(postgres_concurrency, churn_on_one_channel_completes_everything_once_and_ends_listening) {
    const auto url = postgres_test_url();
    run_async_test([&](asio::io_context& io) -> asio::awaitable<void> {
        backend_under_test b(io, url);
        co_await b.connect();
        const auto channel = unique_name("churn");
        completion_log log;
        completion_log publishes;
        constexpr int rounds = 300;
        for (int i = 0; i < rounds; ++i) {
            if (i % 2 == 0) {
                b.pg->async_subscribe(channel, log.track());
            } else {
                b.pg->async_unsubscribe(channel, log.track());
            }
            b.pg->async_publish(channel, "during " + std::to_string(i), publishes.track());
            co_await let_run(i % 5);
        }
        b.pg->async_subscribe(channel, log.track());  // the last word: listening
        co_await eventually([&] { return log.all_called() && publishes.all_called(); }, 20s);
        log.expect_each_called_once();
        publishes.expect_each_called_once();
        for (std::size_t i = 0; i < log.results.size(); ++i) {
            EXPECT_FALSE(log.results[i]) << i << ": " << log.results[i].message();
        }
        for (std::size_t i = 0; i < log.order.size(); ++i) {
            EXPECT_EQ(log.order[i], i) << "completed out of order";
        }
        EXPECT_FALSE(co_await b.publish(channel, "after"));
        co_await eventually([&] { return b.sink->received(channel, "after"); });
        EXPECT_TRUE(b.sink->states.empty()) << "the connection was taken for lost";
    });
}

// The listener's session killed while commands are queued and one is running: every
// completion is still called once (subscribes fail, unsubscribes are done), and after
// the reconnect the channel works.
TEST(postgres_concurrency, listener_killed_during_churn_completes_everything_once) {
    postgres_server pg;
    run_async_test([&](asio::io_context& io) -> asio::awaitable<void> {
        backend_under_test b(io, pg.url() + fast_reconnect);
        co_await b.connect();
        const auto channel = unique_name("churn-outage");
        completion_log log;
        constexpr int rounds = 400;
        for (int i = 0; i < rounds; ++i) {
            if (i % 2 == 0) {
                b.pg->async_subscribe(channel, log.track());
            } else {
                b.pg->async_unsubscribe(channel, log.track());
            }
            co_await let_run(i % 3);
        }
        // Some done, most still queued: kill the listener (the session that LISTENs).
        co_await eventually(
            [&] { return std::count(log.calls.begin(), log.calls.end(), 1) >= 20; });
        BROADCASTER_REQUIRE(
            pg.sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid <> "
                   "pg_backend_pid() AND query LIKE '%LISTEN%'") == 0);
        co_await eventually([&] { return log.all_called(); }, 10s);
        log.expect_each_called_once();
        int failed = 0;
        for (int i = 0; i < rounds; ++i) {
            if (i % 2 == 1) {
                EXPECT_FALSE(log.results[i]) << "an unsubscribe is done either way";
            } else if (log.results[i]) {
                EXPECT_EQ(log.results[i], error::connection_lost) << log.results[i].message();
                ++failed;
            }
        }
        EXPECT_GT(failed, 0) << "the outage came too late to test anything";
        co_await eventually(
            [&] {
                return !b.sink->states.empty() &&
                       b.sink->states.back() == connection_state::connected;
            },
            10s);
        completion_log after;
        b.pg->async_subscribe(channel, after.track());
        co_await eventually([&] { return after.all_called(); });
        EXPECT_FALSE(after.results[0]) << after.results[0].message();
        EXPECT_FALSE(co_await b.publish(channel, "after"));
        co_await eventually([&] { return b.sink->received(channel, "after"); });
    });
}

// Commands queued when the backend is disconnected complete, the running one too.
TEST(postgres_concurrency, disconnect_completes_every_queued_command_once) {
    const auto url = postgres_test_url();
    run_async_test([&](asio::io_context& io) -> asio::awaitable<void> {
        backend_under_test b(io, url);
        co_await b.connect();
        const auto prefix = unique_name("disconnect");
        completion_log log;
        for (int i = 0; i < 50; ++i) {
            b.pg->async_subscribe(prefix + std::to_string(i), log.track());
            b.pg->async_publish(prefix + std::to_string(i), "x", log.track());
        }
        co_await eventually([&] { return std::count(log.calls.begin(), log.calls.end(), 1) >= 5; });
        completion_log disconnected;
        b.pg->async_disconnect(disconnected.track());
        co_await eventually([&] { return log.all_called() && disconnected.all_called(); });
        log.expect_each_called_once();
        disconnected.expect_each_called_once();
    });
}

// ---- through a broadcast -----------------------------------------------------------

// The reproduction: 20 channels subscribed 100 us apart.
TEST(postgres_concurrency, twenty_channels_subscribed_100us_apart_all_complete) {
    const auto url = postgres_test_url();
    run_async_test([&](asio::io_context& io) -> asio::awaitable<void> {
        broadcast bc(io, url);
        co_await bc.async_connect(use_awaitable);
        const auto prefix = unique_name("apart");
        constexpr int count = 20;
        std::vector<subscriber> subs(count);
        int completed = 0;
        asio::steady_timer gap(io);
        for (int i = 0; i < count; ++i) {
            bc.async_subscribe(prefix + "-" + std::to_string(i),
                               [&, i](error_code ec, subscriber s) {
                                   EXPECT_FALSE(ec) << i << ": " << ec.message();
                                   subs[i] = std::move(s);
                                   ++completed;
                               });
            gap.expires_after(100us);
            co_await gap.async_wait(use_awaitable);
        }
        co_await eventually([&] { return completed == count; }, 10s);
        for (int i = 0; i < count; ++i) {
            co_await bc.async_publish(prefix + "-" + std::to_string(i), "hi", use_awaitable);
        }
        for (int i = 0; i < count; ++i) {
            EXPECT_EQ((co_await receive(subs[i])).message(), "hi");
        }
        // And the channels are not wedged: again, after dropping them all.
        subs.clear();
        subs.resize(count);
        completed = 0;
        for (int i = 0; i < count; ++i) {
            bc.async_subscribe(prefix + "-" + std::to_string(i),
                               [&, i](error_code ec, subscriber s) {
                                   EXPECT_FALSE(ec) << i << ": " << ec.message();
                                   subs[i] = std::move(s);
                                   ++completed;
                               });
        }
        co_await eventually([&] { return completed == count; }, 10s);
    });
}

TEST(postgres_concurrency, two_hundred_channels_subscribed_at_once_all_receive) {
    const auto url = postgres_test_url();
    run_async_test([&](asio::io_context& io) -> asio::awaitable<void> {
        broadcast bc(io, url);
        co_await bc.async_connect(use_awaitable);
        const auto prefix = unique_name("crowd");
        constexpr int count = 200;
        std::vector<std::string> names;
        for (int i = 0; i < count; ++i) {
            names.push_back(prefix + "-" + std::to_string(i));
        }
        auto sub = co_await bc.async_subscribe(names, subscribe_options(count), use_awaitable);
        for (const auto& name : names) {
            co_await bc.async_publish(name, "to " + name, use_awaitable);
        }
        for (const auto& name : names) {
            const auto ev = co_await receive(sub);
            EXPECT_EQ(ev.channel(), name);
            EXPECT_EQ(ev.message(), "to " + name);
        }
    });
}

// Publishes to `channel` one after the other until told to stop.
struct flood {
    broadcast& publisher;
    std::string channel;
    bool flooding = true;
    bool done = false;
    int errors = 0;

    asio::awaitable<void> run() {
        while (flooding) {
            auto [ec] =
                co_await publisher.async_publish(channel, "flood", asio::as_tuple(use_awaitable));
            errors += ec ? 1 : 0;
        }
        done = true;
    }
};

// Subscribes to `channel`, checks that a message published after the subscribe
// arrives, drops the subscription; again and again.
struct churner {
    broadcast& bc;
    broadcast& publisher;
    std::string channel;
    std::string name;

    asio::awaitable<void> run(int rounds) {
        for (int round = 0; round < rounds; ++round) {
            auto sub = co_await bc.async_subscribe(channel, use_awaitable);
            const auto marker = name + " " + std::to_string(round);
            co_await publisher.async_publish(channel, marker, use_awaitable);
            while ((co_await receive(sub)).message() != marker) {
            }
            sub = subscriber();
            co_await let_run(round % 4);
        }
    }
};

// Subscribers come and go on two channels while a publisher floods one: a subscriber
// that is confirmed receives what is published after.
TEST(postgres_concurrency, churn_while_publishing_loses_nothing_for_confirmed_subscribers) {
    const auto url = postgres_test_url();
    run_async_test([&](asio::io_context& io) -> asio::awaitable<void> {
        using namespace asio::experimental::awaitable_operators;
        broadcast bc(io, url);
        broadcast publisher(io, url);
        co_await bc.async_connect(use_awaitable);
        co_await publisher.async_connect(use_awaitable);
        const auto a = unique_name("churn-a");
        const auto b = unique_name("churn-b");
        flood f{publisher, a};
        asio::co_spawn(io, f.run(), asio::detached);
        churner c1{bc, publisher, a, "one"};
        churner c2{bc, publisher, a, "two"};
        churner c3{bc, publisher, b, "three"};
        churner c4{bc, publisher, b, "four"};
        constexpr int rounds = 100;
        co_await (c1.run(rounds) && c2.run(rounds) && c3.run(rounds) && c4.run(rounds));
        f.flooding = false;
        co_await eventually([&] { return f.done; });
        EXPECT_EQ(f.errors, 0);
    });
}

// Destroying a busy broadcast and then its io_context (without running it again)
// frees everything: no crash, no socket left open.
TEST(postgres_concurrency, destroying_a_busy_broadcast_and_its_io_context_leaks_nothing) {
    const auto url = postgres_test_url();
    for (const bool run_after : {false, true}) {
        const auto before = open_fds();
        {
            asio::io_context io;
            std::optional<broadcast> bc(std::in_place, io, url);
            bool connected = false;
            bc->async_connect([&](error_code ec) {
                EXPECT_FALSE(ec) << ec.message();
                connected = true;
            });
            while (!connected && io.run_one_for(10s) > 0) {
            }
            ASSERT_TRUE(connected);
            const auto prefix = unique_name("busy");
            for (int i = 0; i < 20; ++i) {
                bc->async_subscribe(prefix + std::to_string(i), [](error_code, subscriber) {});
                bc->async_publish(prefix + std::to_string(i), std::string(9000, 'x'),
                                  [](error_code) {});
            }
            for (int i = 0; i < 10; ++i) {
                io.poll_one();  // some of it under way
            }
            bc.reset();
            if (run_after) {
                io.run_for(200ms);
            }
        }
        EXPECT_EQ(open_fds(), before) << (run_after ? "io_context run after" : "not run after");
    }
}

}  // namespace
}  // namespace broadcaster::test
