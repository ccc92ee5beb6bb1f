// `postgres://?history=N` against a real PostgreSQL 15 cluster: the order of two
// publishers racing on one channel, recovery after the listener's session is killed,
// the gap when more than N were published meanwhile, and messages NOTIFY cannot carry.
// The history conformance suite covers positions, `since`, `last` and async_history.

#include "backends/postgres/postgres_config.hpp"
#include "test_servers.hpp"
#include "test_support.hpp"

#include <boost/asio/as_tuple.hpp>

namespace broadcaster::test {
namespace {

using asio::use_awaitable;
using boost::system::error_code;

// Receives `count` events and checks that their positions follow each other: 1 after
// the last one, with no hole. Returns them.
asio::awaitable<std::vector<event>> receive_consecutive(subscriber& sub, int count,
                                                        std::uint64_t after) {
    std::vector<event> out;
    for (int i = 0; i < count; ++i) {
        auto ev = co_await receive(sub);
        if (ev.position() != std::to_string(after + 1)) {
            throw std::runtime_error("position " + std::string(ev.position()) + " after " +
                                     std::to_string(after));
        }
        ++after;
        out.push_back(std::move(ev));
    }
    co_return out;
}

// A login role of its own for the subscriber, so that the test can cut its sessions
// and keep it out (NOLOGIN) for as long as it needs, while the publisher goes on.
struct separate_login {
    const postgres_server& pg;
    explicit separate_login(const postgres_server& server) : pg(server) {
        if (pg.sql("CREATE ROLE history_listener LOGIN SUPERUSER") != 0) {
            throw std::runtime_error("cannot create the role");
        }
    }
    std::string url(const std::string& options) const {
        auto url = pg.url();
        url.replace(url.find("postgres@"), 8, "history_listener");
        return url + options;
    }
    void cut() const {
        EXPECT_EQ(pg.sql("ALTER ROLE history_listener NOLOGIN"), 0);
        EXPECT_EQ(pg.sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                         "WHERE usename = 'history_listener'"),
                  0);
    }
    void restore() const { EXPECT_EQ(pg.sql("ALTER ROLE history_listener LOGIN"), 0); }
};

constexpr const char* fast_reconnect = "&reconnect_min_ms=20&reconnect_max_ms=100";

// Two broadcasts (two publisher sessions) publish at once on one channel: every
// subscriber sees positions 1, 2, 3, ... in order, each publisher's messages in its
// own order, and the table holds the same sequence.
TEST(postgres_history, two_publishers_on_one_channel_commit_in_position_order) {
    const auto url = postgres_test_url() + "?history=10000";
    // Outside the coroutine: the handlers may run after it ends (on a failure).
    int acknowledged = 0;
    error_code first_error;
    run_async_test([&](asio::io_context& io) -> asio::awaitable<void> {
        broadcast listener(io, url);
        broadcast a(io, url);
        broadcast b(io, url);
        co_await listener.async_connect(use_awaitable);
        co_await a.async_connect(use_awaitable);
        co_await b.async_connect(use_awaitable);
        const auto channel = unique_name("race");
        constexpr int each = 2000;
        auto sub =
            co_await listener.async_subscribe(channel, subscribe_options{4 * each}, use_awaitable);
        for (int i = 0; i < each; ++i) {
            for (auto* bc : {&a, &b}) {
                bc->async_publish(channel, (bc == &a ? "a" : "b") + std::to_string(i),
                                  [&](error_code ec) {
                                      ++acknowledged;
                                      first_error = first_error ? first_error : ec;
                                  });
            }
        }
        const auto received = co_await receive_consecutive(sub, 2 * each, 0);
        co_await eventually([&] { return acknowledged == 2 * each; });
        EXPECT_FALSE(first_error) << first_error.message();
        int next_a = 0;
        int next_b = 0;
        for (const auto& ev : received) {
            const std::string message(ev.message());
            auto& next = message[0] == 'a' ? next_a : next_b;
            BROADCASTER_REQUIRE(message.substr(1) == std::to_string(next));
            ++next;
        }
        EXPECT_FALSE(sub.try_receive());
        const auto kept = co_await listener.async_history(channel, 0, use_awaitable);
        BROADCASTER_REQUIRE(kept.size() == received.size());
        for (std::size_t i = 0; i < kept.size(); ++i) {
            BROADCASTER_REQUIRE(kept[i].position() == received[i].position());
            BROADCASTER_REQUIRE(kept[i].message() == received[i].message());
        }
    });
}

// The listener's session is killed and kept out while another broadcast publishes: once
// back, the subscriber gets every message, in order, exactly once.
TEST(postgres_history, recovers_what_was_published_while_the_listener_was_down) {
    postgres_server pg;
    separate_login login(pg);
    state_log log;
    // Outside the coroutine: the handlers may run after it ends (on a failure).
    int acknowledged = 0;
    error_code first_error;
    run_async_test([&](asio::io_context& io) -> asio::awaitable<void> {
        broadcast listener(io, login.url(std::string("?history=1000") + fast_reconnect));
        broadcast publisher(io, pg.url() + "?history=1000");
        log.attach(listener);
        co_await listener.async_connect(use_awaitable);
        co_await publisher.async_connect(use_awaitable);
        const auto channel = unique_name("recover");
        auto sub =
            co_await listener.async_subscribe(channel, subscribe_options{1000}, use_awaitable);
        const auto publish = [&](int from, int to) {
            for (int i = from; i < to; ++i) {
                publisher.async_publish(channel, std::to_string(i), [&](error_code ec) {
                    ++acknowledged;
                    first_error = first_error ? first_error : ec;
                });
            }
        };
        publish(0, 50);
        co_await receive_consecutive(sub, 50, 0);
        // Some on their way as the session dies, the rest while it cannot come back.
        publish(50, 100);
        login.cut();
        co_await eventually([&] { return log.saw(connection_state::reconnecting); }, 10s);
        publish(100, 150);
        co_await eventually([&] { return acknowledged == 150; }, 10s);
        EXPECT_EQ(log.states.back(), connection_state::reconnecting);
        login.restore();
        // Nothing new is published: what was missed comes from the table by itself.
        const auto missed = co_await receive_consecutive(sub, 100, 50);
        for (int i = 0; i < 100; ++i) {
            BROADCASTER_REQUIRE(missed[i].message() == std::to_string(50 + i));
        }
        EXPECT_EQ(log.states.back(), connection_state::connected);
        publish(150, 200);
        const auto live = co_await receive_consecutive(sub, 50, 150);
        EXPECT_EQ(live.front().message(), "150");
        co_await eventually([&] { return acknowledged == 200; });
        EXPECT_FALSE(first_error) << first_error.message();
        EXPECT_FALSE(sub.try_receive()) << "a duplicate";
    });
}

// More than N published while the listener is down: what was trimmed cannot be
// delivered, and the subscriber ends with history_gap instead of skipping it silently.
TEST(postgres_history, more_than_kept_while_the_listener_was_down_is_a_gap) {
    postgres_server pg;
    separate_login login(pg);
    state_log log;
    run_async_test([&](asio::io_context& io) -> asio::awaitable<void> {
        broadcast listener(io, login.url(std::string("?history=10") + fast_reconnect));
        broadcast publisher(io, pg.url() + "?history=10");
        log.attach(listener);
        co_await listener.async_connect(use_awaitable);
        co_await publisher.async_connect(use_awaitable);
        const auto channel = unique_name("gap");
        auto sub = co_await listener.async_subscribe(channel, use_awaitable);
        co_await publish_numbered(publisher, channel, 5);
        co_await receive_consecutive(sub, 5, 0);
        login.cut();
        co_await eventually([&] { return log.saw(connection_state::reconnecting); }, 10s);
        co_await publish_numbered(publisher, channel, 25);  // positions 6 to 30; 21 to 30 kept
        EXPECT_EQ(log.states.back(), connection_state::reconnecting);
        login.restore();
        {
            using namespace asio::experimental::awaitable_operators;
            asio::steady_timer timeout(io, 5s);
            auto ended = co_await (sub.async_receive(asio::as_tuple(use_awaitable)) ||
                                   timeout.async_wait(use_awaitable));
            BROADCASTER_REQUIRE(ended.index() == 0);
            EXPECT_EQ(std::get<0>(std::get<0>(ended)), error::history_gap);
        }
        // What is kept can still be had, then live.
        subscribe_options options;
        options.last = 100;
        auto again = co_await listener.async_subscribe(channel, options, use_awaitable);
        const auto kept = co_await receive_consecutive(again, 10, 20);
        EXPECT_EQ(kept.front().message(), "15");
        co_await publisher.async_publish(channel, "live", use_awaitable);
        EXPECT_EQ((co_await receive_consecutive(again, 1, 30)).front().message(), "live");
    });
}

// Messages NOTIFY cannot carry (8000 bytes or more, NUL bytes, not UTF-8) are read
// from the history table: in order with the others, with their positions. A broadcast
// without `history` on the same channel gets them too (without positions).
TEST(postgres_history, messages_notify_cannot_carry_come_from_the_table_in_order) {
    const auto url = postgres_test_url();
    // Outside the coroutine: the handlers may run after it ends (on a failure).
    std::size_t acknowledged = 0;
    run_async_test([&](asio::io_context& io) -> asio::awaitable<void> {
        broadcast bc(io, url + "?history=100");
        broadcast plain(io, url);
        co_await bc.async_connect(use_awaitable);
        co_await plain.async_connect(use_awaitable);
        const auto channel = unique_name("large");
        auto sub = co_await bc.async_subscribe(channel, use_awaitable);
        auto plain_sub = co_await plain.async_subscribe(channel, use_awaitable);
        std::vector<std::string> messages{"small",
                                          std::string(20000, 'x'),
                                          std::string("nul\0byte", 8),
                                          "\xff\xfe not utf-8",
                                          "small again",
                                          "",
                                          "\x1e"
                                          "7:looks like a notification"};
        // Not awaited one by one, so they share transactions; acknowledged by the end
        // (a subscriber may see a message before its publisher has the COMMIT's reply).
        for (const auto& m : messages) {
            bc.async_publish(channel, m, [&](error_code ec) {
                EXPECT_FALSE(ec) << ec.message();
                ++acknowledged;
            });
        }
        const auto received = co_await receive_consecutive(sub, 7, 0);
        for (std::size_t i = 0; i < messages.size(); ++i) {
            EXPECT_EQ(received[i].message(), messages[i]) << i;
            const auto ev = co_await receive(plain_sub);
            EXPECT_EQ(ev.message(), messages[i]) << i;
            EXPECT_TRUE(ev.position().empty());
        }
        const auto kept = co_await bc.async_history(channel, 3, use_awaitable);
        BROADCASTER_REQUIRE(kept.size() == 3u);
        EXPECT_EQ(kept[0].message(), "small again");
        EXPECT_EQ(kept[1].position(), "6");
        co_await eventually([&] { return acknowledged == messages.size(); });
    });
}

TEST(postgres_history, without_the_option_there_is_no_history) {
    run_async_test([&](asio::io_context& io) -> asio::awaitable<void> {
        broadcast bc(io, postgres_test_url());
        co_await bc.async_connect(use_awaitable);
        auto [ec, events] =
            co_await bc.async_history(unique_name("none"), 1, asio::as_tuple(use_awaitable));
        EXPECT_EQ(ec, error::history_not_supported);
    });
}

TEST(postgres_history, url_options) {
    const auto parse = [](const std::string& url) {
        return detail::parse_postgres_url(backend_config{url, url, {}});
    };
    const auto config = parse("postgres://h/db?history=50&history_table=kept");
    EXPECT_EQ(config.history, 50u);
    EXPECT_EQ(config.history_table, "kept");
    EXPECT_EQ(parse("postgres://h/db").history, 0u);
    for (const auto* bad :
         {"postgres://h/db?history=-1", "postgres://h/db?history=x",
          "postgres://h/db?history=1000000001", "postgres://h/db?history_table="}) {
        try {
            parse(bad);
            ADD_FAILURE() << bad;
        } catch (const boost::system::system_error& e) {
            EXPECT_EQ(e.code(), error::invalid_url) << bad;
        }
    }
}

}  // namespace
}  // namespace broadcaster::test
