// The Postgres backend against a real PostgreSQL 15 cluster: restarts, killed
// sessions, concurrency, quoting, long names and large payloads. The conformance
// suite covers the rest.

#include "backends/postgres/postgres_config.hpp"
#include "test_servers.hpp"
#include "test_support.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>

#include <limits>

namespace broadcaster::test {
namespace {

using asio::use_awaitable;
using boost::system::error_code;

constexpr const char* fast_reconnect = "?reconnect_min_ms=20&reconnect_max_ms=200";

TEST(postgres, notifications_flow_again_after_a_server_restart) {
    postgres_server pg;
    state_log log;
    run_async_test([&](asio::io_context& io) -> asio::awaitable<void> {
        broadcast bc(io, pg.url() + fast_reconnect);
        log.attach(bc);
        co_await bc.async_connect(use_awaitable);
        auto sub = co_await bc.async_subscribe("restart", use_awaitable);
        co_await bc.async_publish("restart", "before", use_awaitable);
        EXPECT_EQ((co_await receive(sub)).message(), "before");
        pg.crash_and_restart();
        co_await eventually([&] { return log.saw(connection_state::reconnecting); }, 10s);
        co_await eventually([&] { return log.states.back() == connection_state::connected; }, 10s);
        co_await bc.async_publish("restart", "after", use_awaitable);
        EXPECT_EQ((co_await receive(sub)).message(), "after");
        EXPECT_EQ(bc.stats().reconnects, 1u);
    });
}

// A publish still queued (here: waiting for the connection) can be cancelled: it
// completes at once with operation_aborted and is never sent, while the one queued
// after it is.
TEST(postgres, a_cancelled_queued_publish_completes_at_once_and_is_never_sent) {
    postgres_server pg;
    state_log log;
    // Outside the coroutine: the handlers may run after it ends (on a failure).
    std::optional<error_code> cancelled;
    std::optional<error_code> kept;
    run_async_test([&](asio::io_context& io) -> asio::awaitable<void> {
        broadcast bc(io, pg.url() + fast_reconnect + "&publish_timeout_ms=60000");
        log.attach(bc);
        co_await bc.async_connect(use_awaitable);
        auto sub = co_await bc.async_subscribe("cancel-queued", use_awaitable);
        pg.stop();
        co_await eventually([&] { return log.saw(connection_state::reconnecting); }, 10s);

        asio::cancellation_signal cancel;
        bc.async_publish(
            "cancel-queued", "cancelled",
            asio::bind_cancellation_slot(cancel.slot(), [&](error_code ec) { cancelled = ec; }));
        bc.async_publish("cancel-queued", "kept", [&](error_code ec) { kept = ec; });
        cancel.emit(asio::cancellation_type::terminal);
        // Far sooner than the publish timeout (60 s), with the server still down.
        co_await eventually([&] { return cancelled.has_value(); }, 10s);
        EXPECT_EQ(*cancelled, asio::error::operation_aborted) << cancelled->message();
        EXPECT_FALSE(kept.has_value());

        pg.start();
        co_await eventually([&] { return kept.has_value(); }, 20s);
        EXPECT_FALSE(*kept) << kept->message();
        co_await eventually([&] { return log.states.back() == connection_state::connected; }, 10s);
        co_await bc.async_publish("cancel-queued", "after", use_awaitable);
        for (;;) {
            const auto ev = co_await receive(sub);
            EXPECT_NE(ev.message(), "cancelled");
            if (ev.message() == "after") {
                break;
            }
        }
        EXPECT_EQ(bc.stats().published, 2u);
    });
}

// Publishes queued during an outage (more than one batch of them) are sent once the
// connection is back and every channel is listened to again: the broadcast's own
// subscribers get each of them, in order. (A publisher of the lost connection, woken by
// them, used to send a batch on it; and a new one could send before the LISTENs.)
TEST(postgres, publishes_queued_during_an_outage_reach_the_same_broadcasts_subscribers) {
    postgres_server pg;
    state_log log;
    int acknowledged = 0;
    error_code first_error;
    run_async_test([&](asio::io_context& io) -> asio::awaitable<void> {
        broadcast bc(io, pg.url() + fast_reconnect + "&publish_timeout_ms=60000");
        log.attach(bc);
        co_await bc.async_connect(use_awaitable);
        constexpr int count = 600;  // more than two batches
        auto sub =
            co_await bc.async_subscribe("outage-queue", subscribe_options{count}, use_awaitable);
        pg.stop();
        co_await eventually([&] { return log.saw(connection_state::reconnecting); }, 10s);
        for (int i = 0; i < count; ++i) {
            bc.async_publish("outage-queue", std::to_string(i), [&](error_code ec) {
                ++acknowledged;
                first_error = first_error ? first_error : ec;
            });
        }
        pg.start();
        co_await eventually([&] { return acknowledged == count; }, 20s);
        EXPECT_FALSE(first_error) << first_error.message();
        for (int i = 0; i < count; ++i) {
            BROADCASTER_REQUIRE((co_await receive(sub)).message() == std::to_string(i));
        }
    });
}

TEST(postgres, notifications_flow_again_after_pg_terminate_backend) {
    postgres_server pg;
    state_log log;
    run_async_test([&](asio::io_context& io) -> asio::awaitable<void> {
        broadcast bc(io, pg.url() + fast_reconnect);
        log.attach(bc);
        co_await bc.async_connect(use_awaitable);
        auto sub = co_await bc.async_subscribe("terminated", use_awaitable);
        EXPECT_EQ(pg.sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                         "WHERE pid <> pg_backend_pid() AND backend_type = 'client backend'"),
                  0);
        co_await eventually([&] { return log.saw(connection_state::reconnecting); }, 10s);
        co_await eventually([&] { return log.states.back() == connection_state::connected; }, 10s);
        co_await bc.async_publish("terminated", "still here", use_awaitable);
        EXPECT_EQ((co_await receive(sub)).message(), "still here");
    });
}

TEST(postgres, many_subscribers_and_publishers_at_once_lose_nothing) {
    const auto url = postgres_test_url();
    run_async_test([&](asio::io_context& io) -> asio::awaitable<void> {
        broadcast listeners(io, url);
        broadcast publishers(io, url);
        co_await listeners.async_connect(use_awaitable);
        co_await publishers.async_connect(use_awaitable);
        const auto channel = unique_name("crowd");
        constexpr int subscriber_count = 100;
        constexpr int publisher_count = 10;
        constexpr int per_publisher = 50;
        std::vector<subscriber> subs;
        int subscribed = 0;
        for (int i = 0; i < subscriber_count; ++i) {
            listeners.async_subscribe(channel, [&](error_code ec, subscriber sub) {
                EXPECT_FALSE(ec) << ec.message();
                subs.push_back(std::move(sub));
                ++subscribed;
            });
        }
        co_await eventually([&] { return subscribed == subscriber_count; }, 10s);
        int acknowledged = 0;
        for (int p = 0; p < publisher_count; ++p) {
            for (int i = 0; i < per_publisher; ++i) {
                publishers.async_publish(channel, std::to_string(p) + ":" + std::to_string(i),
                                         [&](error_code ec) {
                                             EXPECT_FALSE(ec) << ec.message();
                                             ++acknowledged;
                                         });
            }
        }
        for (auto& sub : subs) {
            std::vector<int> next(publisher_count, 0);
            for (int n = 0; n < publisher_count * per_publisher; ++n) {
                const std::string text((co_await receive(sub, 10s)).message());
                const auto colon = text.find(':');
                const int p = std::stoi(text.substr(0, colon));
                BROADCASTER_REQUIRE(std::stoi(text.substr(colon + 1)) == next[p]++);
            }
        }
        co_await eventually([&] { return acknowledged == publisher_count * per_publisher; });
    });
}

TEST(postgres, channel_names_are_quoted_never_pasted) {
    const auto url = postgres_test_url();
    run_async_test([&](asio::io_context& io) -> asio::awaitable<void> {
        broadcast bc(io, url);
        co_await bc.async_connect(use_awaitable);
        const std::vector<std::string> names{
            "a\"; DROP TABLE x; --", "Chat Room", "ÜNICODE", "UPPER", "upper", "it's"};
        std::vector<subscriber> subs;
        for (const auto& name : names) {
            subs.push_back(co_await bc.async_subscribe(name, use_awaitable));
        }
        for (const auto& name : names) {
            co_await bc.async_publish(name, "to " + name, use_awaitable);
        }
        for (std::size_t i = 0; i < names.size(); ++i) {
            const auto ev = co_await receive(subs[i]);
            EXPECT_EQ(ev.channel(), names[i]);
            EXPECT_EQ(ev.message(), "to " + names[i]);
            EXPECT_FALSE(subs[i].try_receive()) << "UPPER and upper are different channels";
        }
    });
}

TEST(postgres, long_channel_names_do_not_collide) {
    const auto url = postgres_test_url();
    run_async_test([&](asio::io_context& io) -> asio::awaitable<void> {
        broadcast bc(io, url);
        co_await bc.async_connect(use_awaitable);
        // Equal in their first 63 bytes, which Postgres would keep of each.
        const auto stem = unique_name("long") + std::string(100, 'x');
        auto first = co_await bc.async_subscribe(stem + "-1", use_awaitable);
        auto second = co_await bc.async_subscribe(stem + "-2", use_awaitable);
        co_await bc.async_publish(stem + "-1", "one", use_awaitable);
        co_await bc.async_publish(stem + "-2", "two", use_awaitable);
        const auto ev = co_await receive(first);
        EXPECT_EQ(ev.message(), "one");
        EXPECT_EQ(ev.channel(), stem + "-1");
        EXPECT_EQ((co_await receive(second)).message(), "two");
        EXPECT_FALSE(first.try_receive());
    });
}

TEST(postgres, carries_what_notify_cannot_through_the_payload_table) {
    const auto url = postgres_test_url();
    run_async_test([&](asio::io_context& io) -> asio::awaitable<void> {
        broadcast bc(io, url);
        co_await bc.async_connect(use_awaitable);
        const auto channel = unique_name("large");
        auto sub = co_await bc.async_subscribe(channel, use_awaitable);
        std::string binary(300, '\0');
        for (std::size_t i = 0; i < binary.size(); ++i) {
            binary[i] = static_cast<char>(i);
        }
        const std::vector<std::string> payloads{std::string(7999, 'a'),
                                                std::string(8000, 'b'),
                                                std::string(8192, 'c'),
                                                std::string(1024 * 1024, 'd'),
                                                binary,
                                                std::string("\x1f"
                                                            "42"),
                                                std::string("\x1e"
                                                            "5:a history notification"),
                                                "\xff\xfe not utf-8"};
        for (const auto& payload : payloads) {
            co_await bc.async_publish(channel, payload, use_awaitable);
        }
        for (const auto& payload : payloads) {
            const auto ev = co_await receive(sub);
            EXPECT_EQ(ev.message().size(), payload.size());
            EXPECT_TRUE(ev.message() == payload);
        }
    });
}

TEST(postgres, a_flood_of_mixed_inline_and_table_payloads_loses_nothing) {
    const auto url = postgres_test_url();
    run_async_test([&](asio::io_context& io) -> asio::awaitable<void> {
        broadcast bc(io, url);
        co_await bc.async_connect(use_awaitable);
        const auto channel = unique_name("mixed");
        constexpr int count = 3000;
        auto sub = co_await bc.async_subscribe(channel, subscribe_options(count), use_awaitable);
        // Numbered; every third is binary (through the table), some repeat exactly.
        std::vector<std::string> sent;
        int acknowledged = 0;
        for (int i = 0; i < count; ++i) {
            std::string message = i % 3 == 0   ? std::string("\xff", 1) + std::to_string(i)
                                  : i % 7 == 0 ? std::string("same")
                                               : std::to_string(i);
            sent.push_back(message);
            bc.async_publish(channel, message, [&](error_code ec) {
                EXPECT_FALSE(ec) << ec.message();
                ++acknowledged;
            });
        }
        for (int i = 0; i < count; ++i) {
            BROADCASTER_REQUIRE((co_await receive(sub, 10s)).message() == sent[i]);
        }
        co_await eventually([&] { return acknowledged == count; });
    });
}

TEST(postgres, notifications_read_while_fetching_a_payload_are_not_left_waiting) {
    const auto url = postgres_test_url();
    run_async_test([&](asio::io_context& io) -> asio::awaitable<void> {
        broadcast bc(io, url);
        co_await bc.async_connect(use_awaitable);
        const auto channel = unique_name("tail");
        auto sub = co_await bc.async_subscribe(channel, use_awaitable);
        // A stored payload followed by small ones, then silence: those read along with
        // the fetch's reply must be delivered without waiting for more traffic.
        int acknowledged = 0;
        for (int round = 0; round < 20; ++round) {
            co_await bc.async_publish(channel, std::string("\xff", 1) + "stored", use_awaitable);
            for (int i = 0; i < 3; ++i) {
                bc.async_publish(channel, "small", [&](error_code ec) {
                    EXPECT_FALSE(ec) << ec.message();
                    ++acknowledged;
                });
            }
            for (int i = 0; i < 4; ++i) {
                (void)co_await receive(sub, 5s);
            }
        }
        // A notification can arrive before its publisher has read COMMIT's reply.
        co_await eventually([&] { return acknowledged == 60; });
    });
}

TEST(postgres, refuses_channels_it_cannot_carry) {
    const auto url = postgres_test_url();
    run_async_test([&](asio::io_context& io) -> asio::awaitable<void> {
        broadcast bc(io, url);
        co_await bc.async_connect(use_awaitable);
        const std::vector<std::string> bad{"", std::string("a\0b", 3), "\xff\xfe"};
        for (const auto& name : bad) {
            auto [ec, sub] = co_await bc.async_subscribe(name, asio::as_tuple(use_awaitable));
            EXPECT_EQ(ec, error::invalid_channel);
            auto [publish_ec] = co_await bc.async_publish(name, "x", asio::as_tuple(use_awaitable));
            EXPECT_EQ(publish_ec, error::invalid_channel);
        }
    });
}

// Messages over max_payload_bytes are refused before anything is sent (libpq takes
// lengths as int: a 2 GB message used to overflow on its way).
TEST(postgres, refuses_payloads_over_max_payload_bytes) {
    const auto url = postgres_test_url();
    run_async_test([&](asio::io_context& io) -> asio::awaitable<void> {
        broadcast bc(io, url + "?max_payload_bytes=10000");
        co_await bc.async_connect(use_awaitable);
        const auto channel = unique_name("limit");
        auto sub = co_await bc.async_subscribe(channel, use_awaitable);
        auto [ec] = co_await bc.async_publish(channel, std::string(10001, 'x'),
                                              asio::as_tuple(use_awaitable));
        EXPECT_EQ(ec, error::payload_too_large) << ec.message();
        // At the limit: through the payload table.
        co_await bc.async_publish(channel, std::string(10000, 'y'), use_awaitable);
        EXPECT_EQ((co_await receive(sub)).message(), std::string(10000, 'y'));
        EXPECT_FALSE(sub.try_receive()) << "the refused one was not sent";
    });
}

TEST(postgres, max_payload_bytes_defaults_to_what_postgres_and_libpq_can_take) {
    const auto url = postgres_test_url();
    const auto parsed = detail::parse_postgres_url(backend_config{url, url, {}});
    EXPECT_EQ(parsed.max_payload_bytes, 1000u * 1024 * 1024) << "as docs/backends/postgres.md says";
    // libpq's lengths are int; Postgres takes a message (the field and what surrounds
    // it) of less than 1 GiB.
    EXPECT_LE(parsed.max_payload_bytes, static_cast<std::size_t>(std::numeric_limits<int>::max()));
    EXPECT_LT(parsed.max_payload_bytes, 1024u * 1024 * 1024 - 64 * 1024);
    asio::io_context io;
    for (const auto* value : {"1048576001", "2147483648", "-1", "x"}) {
        try {
            broadcast bc(io, url + "?max_payload_bytes=" + value);
            ADD_FAILURE() << value << " was accepted";
        } catch (const boost::system::system_error& e) {
            EXPECT_EQ(e.code(), error::invalid_url) << value;
            EXPECT_NE(std::string(e.what()).find("max_payload_bytes"), std::string::npos)
                << e.what();
        }
    }
}

TEST(postgres, a_missing_database_is_a_clear_error) {
    postgres_server pg;
    run_async_test([&](asio::io_context& io) -> asio::awaitable<void> {
        broadcast bc(io, "postgres://postgres:hunter2@127.0.0.1:" + std::to_string(pg.port()) +
                             "/no_such_db");
        EXPECT_EQ(bc.url().find("hunter2"), std::string::npos);
        auto [ec] = co_await bc.async_connect(asio::as_tuple(use_awaitable));
        // The server answered and refused: no retry will help.
        EXPECT_EQ(ec, error::broker_error) << ec.message();
        EXPECT_EQ(ec, condition::refused_by_broker);
        EXPECT_NE(ec, condition::transient);
    });
}

TEST(postgres, an_unreachable_server_fails_the_connect) {
    const auto port = free_port();
    run_async_test([&](asio::io_context& io) -> asio::awaitable<void> {
        broadcast bc(io, "postgres://postgres@127.0.0.1:" + std::to_string(port) + "/postgres");
        auto [ec] = co_await bc.async_connect(asio::as_tuple(use_awaitable));
        EXPECT_EQ(ec, error::unreachable) << ec.message();
        EXPECT_EQ(ec, condition::transient);
    });
}

}  // namespace
}  // namespace broadcaster::test
