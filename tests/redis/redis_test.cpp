// The Redis backend against real redis-servers: restarts, killed connections,
// authentication, TLS, and URL errors. The conformance suite covers the rest.

#include "delay_proxy.hpp"
#include "own_redis.hpp"
#include "test_servers.hpp"
#include "test_support.hpp"
#include "tls_files.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>

#include <csignal>
#include <fstream>
#include <set>
#include <sstream>

namespace broadcaster::test {
namespace {

using asio::use_awaitable;
using boost::system::error_code;

TEST(redis, subscriptions_survive_a_server_restart) {
    own_redis redis;
    run_async_test([&](asio::io_context& io) -> asio::awaitable<void> {
        broadcast bc(io, redis.url("", fast_reconnect));
        state_log log;
        log.attach(bc);
        co_await bc.async_connect(use_awaitable);
        auto a = co_await bc.async_subscribe("restart-a", use_awaitable);
        const channel_list both{"restart-a", "restart-b"};
        auto b = co_await bc.async_subscribe(both, use_awaitable);
        co_await bc.async_publish("restart-a", "before", use_awaitable);
        EXPECT_EQ((co_await receive(a)).message(), "before");
        EXPECT_EQ((co_await receive(b)).message(), "before");

        redis.server->crash_and_restart();  // kill -9, then start on the same port
        const auto accepted_at = std::chrono::steady_clock::now();

        // Wait on the observer only: reconnecting, then connected with every
        // subscription restored.
        co_await eventually([&] { return log.saw(connection_state::reconnecting); });
        co_await eventually([&] { return log.states.back() == connection_state::connected; });
        co_await bc.async_publish("restart-b", "after", use_awaitable);
        EXPECT_EQ((co_await receive(b)).message(), "after");
        co_await bc.async_publish("restart-a", "after-a", use_awaitable);
        EXPECT_EQ((co_await receive(a)).message(), "after-a");
        EXPECT_LT(std::chrono::steady_clock::now() - accepted_at, 2s);
        EXPECT_EQ(bc.stats().reconnects, 1u);
    });
}

// Publishes made during an outage wait for the connection; they must also wait until
// the broadcast's own subscriptions are restored, or Redis gets them first and this
// broadcast's subscribers never see them. A proxy holds back the subscribe connection's
// traffic by 300 ms, so a publish sent before the restore is confirmed reaches Redis
// first, every time.
TEST(redis, publishes_queued_during_an_outage_reach_the_same_broadcasts_subscribers) {
    own_redis redis;
    run_async_test([&](asio::io_context& io) -> asio::awaitable<void> {
        delay_proxy proxy(io, redis.port, 300ms);
        broadcast bc(io, "redis://127.0.0.1:" + std::to_string(proxy.port()) +
                             "?reconnect_min_ms=20&reconnect_max_ms=100&publish_timeout_ms=20000");
        state_log log;
        log.attach(bc);
        co_await bc.async_connect(use_awaitable);
        std::vector<std::string> names;
        for (int i = 0; i < 50; ++i) {
            names.push_back(unique_name("outage-queue"));
        }
        auto sub = co_await bc.async_subscribe(channel_list(names), use_awaitable);

        redis.server->stop(SIGKILL);
        co_await eventually([&] { return log.saw(connection_state::reconnecting); });
        int acknowledged = 0;
        int failed = 0;
        for (const auto& name : names) {
            bc.async_publish(name, name, [&](error_code ec) {
                ++acknowledged;
                failed += ec ? 1 : 0;
            });
        }
        redis.server->start();
        co_await eventually([&] { return acknowledged == 50; }, 20s);
        EXPECT_EQ(failed, 0);

        std::set<std::string> received;
        while (received.size() < names.size()) {
            received.insert(std::string((co_await receive(sub)).message()));
        }
        EXPECT_EQ(received, std::set<std::string>(names.begin(), names.end()));
    });
}

// A publish still queued (here: waiting for the connection) can be cancelled: it
// completes at once with operation_aborted and is never sent, while the one queued
// after it is.
TEST(redis, a_cancelled_queued_publish_completes_at_once_and_is_never_sent) {
    own_redis redis;
    // Outside the coroutine: the handlers may run after it ends (on a failure).
    std::optional<error_code> cancelled;
    std::optional<error_code> kept;
    run_async_test([&](asio::io_context& io) -> asio::awaitable<void> {
        broadcast bc(io, redis.url("",
                                   "?publish_timeout_ms=60000&reconnect_min_ms=20&"
                                   "reconnect_max_ms=100"));
        state_log log;
        log.attach(bc);
        co_await bc.async_connect(use_awaitable);
        const auto channel = unique_name("cancel-queued");
        auto sub = co_await bc.async_subscribe(channel, use_awaitable);
        redis.server->stop(SIGKILL);
        co_await eventually([&] { return log.saw(connection_state::reconnecting); });

        asio::cancellation_signal cancel;
        bc.async_publish(
            channel, "cancelled",
            asio::bind_cancellation_slot(cancel.slot(), [&](error_code ec) { cancelled = ec; }));
        bc.async_publish(channel, "kept", [&](error_code ec) { kept = ec; });
        cancel.emit(asio::cancellation_type::terminal);
        // Far sooner than the publish timeout (60 s), with the server still down.
        co_await eventually([&] { return cancelled.has_value(); }, 10s);
        EXPECT_EQ(*cancelled, asio::error::operation_aborted) << cancelled->message();
        EXPECT_FALSE(kept.has_value());

        redis.server->start();
        co_await eventually([&] { return kept.has_value(); }, 20s);
        EXPECT_FALSE(*kept) << kept->message();
        co_await eventually([&] { return log.states.back() == connection_state::connected; }, 10s);
        co_await bc.async_publish(channel, "after", use_awaitable);
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

TEST(redis, recovers_from_client_kill_of_its_pubsub_connection) {
    own_redis redis;
    run_async_test([&](asio::io_context& io) -> asio::awaitable<void> {
        broadcast bc(io, redis.url("", fast_reconnect));
        state_log log;
        log.attach(bc);
        co_await bc.async_connect(use_awaitable);
        auto sub = co_await bc.async_subscribe("killed", use_awaitable);
        EXPECT_EQ(redis.cli("CLIENT KILL TYPE pubsub"), 0);
        co_await eventually([&] { return log.saw(connection_state::reconnecting); });
        co_await eventually([&] { return log.states.back() == connection_state::connected; });
        co_await bc.async_publish("killed", "still here", use_awaitable);
        EXPECT_EQ((co_await receive(sub)).message(), "still here");
    });
}

TEST(redis, publish_waits_for_the_connection_then_fails_with_reconnect_timeout) {
    own_redis redis;
    run_async_test([&](asio::io_context& io) -> asio::awaitable<void> {
        // Reconnect attempts at most 100 ms apart, so the late publish below finds the
        // server back well within its timeout, even under a sanitizer.
        broadcast bc(io, redis.url("",
                                   "?publish_timeout_ms=1000&reconnect_min_ms=20&"
                                   "reconnect_max_ms=100"));
        state_log log;
        log.attach(bc);
        co_await bc.async_connect(use_awaitable);
        redis.server->stop(SIGKILL);
        co_await eventually([&] { return log.saw(connection_state::reconnecting); });
        const auto started = std::chrono::steady_clock::now();
        auto [ec] = co_await bc.async_publish("c", "lost", asio::as_tuple(use_awaitable));
        EXPECT_EQ(ec, error::reconnect_timeout) << ec.message();
        EXPECT_EQ(ec, condition::transient);
        EXPECT_GE(std::chrono::steady_clock::now() - started, 950ms);
        // A subscribe does not wait: the connection is down, the app may retry.
        auto [subscribe_ec, none] = co_await bc.async_subscribe("c", asio::as_tuple(use_awaitable));
        EXPECT_EQ(subscribe_ec, error::connection_lost) << subscribe_ec.message();

        // A publish made during the outage completes once the server is back.
        std::optional<error_code> result;
        bc.async_publish("c", "late", [&](error_code e) { result = e; });
        redis.server->start();
        co_await eventually([&] { return result.has_value(); });
        EXPECT_FALSE(*result) << result->message();
    });
}

TEST(redis, authenticates_with_a_password_and_an_acl_user) {
    own_redis redis(
        {"--requirepass", "s3cret", "--user", "alice", "on", ">wonder", "~*", "&*", "+@all"});
    run_async_test([&](asio::io_context& io) -> asio::awaitable<void> {
        const std::vector<std::string> users{":s3cret@", "alice:wonder@"};
        for (const auto& userinfo : users) {
            broadcast bc(io, redis.url(userinfo));
            co_await bc.async_connect(use_awaitable);
            auto sub = co_await bc.async_subscribe("auth", use_awaitable);
            co_await bc.async_publish("auth", userinfo, use_awaitable);
            EXPECT_EQ((co_await receive(sub)).message(), userinfo);
        }
    });
}

TEST(redis, a_wrong_or_missing_password_is_a_clear_error) {
    own_redis redis({"--requirepass", "s3cret"});
    run_async_test([&](asio::io_context& io) -> asio::awaitable<void> {
        const std::vector<std::string> users{":wrong@", ""};
        for (const auto& userinfo : users) {
            broadcast bc(io, redis.url(userinfo));
            auto [ec] = co_await bc.async_connect(asio::as_tuple(use_awaitable));
            EXPECT_EQ(ec, error::authentication_failed) << userinfo << ": " << ec.message();
            EXPECT_EQ(ec, condition::configuration);
            EXPECT_EQ(ec, condition::refused_by_broker);
            EXPECT_NE(ec, condition::transient);
            EXPECT_EQ(bc.state(), connection_state::disconnected);
        }
    });
}

TEST(redis, an_unreachable_server_fails_the_connect) {
    const auto port = free_port();
    run_async_test([&](asio::io_context& io) -> asio::awaitable<void> {
        broadcast bc(io, "redis://127.0.0.1:" + std::to_string(port));
        auto [ec] = co_await bc.async_connect(asio::as_tuple(use_awaitable));
        EXPECT_EQ(ec, error::unreachable) << ec.message();
        EXPECT_EQ(ec, condition::transient);
        EXPECT_NE(ec, condition::configuration);
    });
}

// Bytes the server has received on its connections at `port` but not read yet.
std::size_t unread_at_server(unsigned short port) {
    std::ifstream table("/proc/net/tcp");
    std::string line;
    std::getline(table, line);  // the header
    std::size_t unread = 0;
    while (std::getline(table, line)) {
        // sl local_address rem_address st tx_queue:rx_queue ...
        std::istringstream fields(line);
        std::string slot, local, remote, state, queues;
        fields >> slot >> local >> remote >> state >> queues;
        const auto local_port = std::stoul(local.substr(local.find(':') + 1), nullptr, 16);
        if (local_port == port && state == "01") {
            unread += std::stoul(queues.substr(queues.find(':') + 1), nullptr, 16);
        }
    }
    return unread;
}

// A publish written to the socket whose reply never comes because the server died: it
// may or may not have been published, and says so. The server is stopped (SIGSTOP) so
// it reads nothing; once the kernel holds the PUBLISH for it, it is killed.
TEST(redis, a_publish_in_flight_when_the_server_dies_fails_with_connection_lost) {
    own_redis redis;
    run_async_test([&](asio::io_context& io) -> asio::awaitable<void> {
        broadcast bc(io, redis.url("", "?publish_timeout_ms=20000"));
        co_await bc.async_connect(use_awaitable);
        // Killed whatever happens: a stopped server would not end on the usual SIGTERM.
        struct kill_at_exit {
            server_process& server;
            ~kill_at_exit() { server.stop(SIGKILL); }
        } killer{*redis.server};
        BROADCASTER_REQUIRE(::kill(redis.server->pid(), SIGSTOP) == 0);
        std::optional<error_code> result;
        bc.async_publish("in-flight", "maybe", [&](error_code ec) { result = ec; });
        co_await eventually([&] { return unread_at_server(redis.port) > 0; });
        redis.server->stop(SIGKILL);
        co_await eventually([&] { return result.has_value(); });
        EXPECT_EQ(*result, error::connection_lost) << result->message();
        EXPECT_EQ(*result, condition::transient);
    });
}

TEST(redis, rejects_bad_urls_naming_the_problem_without_the_password) {
    asio::io_context io;
    for (const auto* url : {"redis://:pw@host?bogus=1", "redis://:pw@host?connect_timeout_ms=abc",
                            "redis://:pw@host/notanumber", "redis://:pw@host:0"}) {
        try {
            broadcast bc(io, url);
            ADD_FAILURE() << "accepted " << url;
        } catch (const boost::system::system_error& e) {
            EXPECT_EQ(e.code(), error::invalid_url) << url;
            EXPECT_EQ(std::string(e.what()).find(":pw@"), std::string::npos) << e.what();
        }
    }
}

TEST(redis, speaks_tls_and_verifies_the_certificate) {
    tls_files tls;
    scratch_dir dir("broadcaster-redis-tls");
    const auto port = free_port();
    auto server = start_redis(
        dir, port,
        {"--port", "0", "--tls-port", std::to_string(port), "--tls-cert-file", tls.cert,
         "--tls-key-file", tls.key, "--tls-ca-cert-file", tls.cert, "--tls-auth-clients", "no"});
    // start_redis put "--port <port>" first; the later "--port 0" wins, so only TLS listens.
    const auto base = "rediss://localhost:" + std::to_string(port);
    run_async_test([&](asio::io_context& io) -> asio::awaitable<void> {
        const std::vector<std::string> urls{base + "?tls_ca_file=" + tls.cert,
                                            base + "?tls_verify=false"};
        for (const auto& url : urls) {
            broadcast bc(io, url);
            co_await bc.async_connect(use_awaitable);
            auto sub = co_await bc.async_subscribe("secure", use_awaitable);
            co_await bc.async_publish("secure", "over tls", use_awaitable);
            EXPECT_EQ((co_await receive(sub)).message(), "over tls");
        }
        // Without the CA, the self-signed certificate is refused.
        broadcast untrusted(io, base);
        auto [ec] = co_await untrusted.async_connect(asio::as_tuple(use_awaitable));
        EXPECT_TRUE(ec) << "connected to an untrusted server";
    });
}

}  // namespace
}  // namespace broadcaster::test
