// The NATS backend against real nats-server processes on loopback: URLs and their
// secrets, what NATS cannot carry, wildcard subscriptions, a server restart, a slow
// subscriber, and a three-node cluster losing a node during a stream.

#include "backends/nats/nats_config.hpp"
#include "backends/nats/nats_delivery.hpp"
#include "silent_server.hpp"
#include "stalled_callback_thread.hpp"
#include "stalled_delivery_thread.hpp"
#include "test_servers.hpp"
#include "test_support.hpp"

#include <broadcaster/url.hpp>

#include <boost/asio/as_tuple.hpp>

#include <fstream>
#include <thread>

namespace broadcaster::test {
namespace {

using asio::use_awaitable;
using boost::system::error_code;
using namespace asio::experimental::awaitable_operators;

constexpr const char* fast_reconnect = "reconnect_min_ms=20&reconnect_max_ms=200";

// A nats-server of the test's own, for tests that stop it.
struct own_nats {
    scratch_dir dir{"broadcaster-nats-own"};
    unsigned short port = free_port();
    std::unique_ptr<server_process> server;
    explicit own_nats(std::vector<std::string> extra = {}) : server(start_nats(dir, port, extra)) {}
    std::string url(const std::string& query = fast_reconnect) const {
        return "nats://127.0.0.1:" + std::to_string(port) + (query.empty() ? "" : "?" + query);
    }
};

detail::nats_config parse(const std::string& url) {
    return detail::parse_nats_url(backend_config{url, redact_url(url), {}});
}

TEST(nats_url, servers_credentials_and_options) {
    auto c = parse("nats://u%40x:p%3Aw@a:4223,b,[::1]:5000?connect_timeout_ms=300&name=x&tls=true");
    EXPECT_EQ(c.servers,
              (std::vector<std::string>{"nats://a:4223", "nats://b:4222", "nats://[::1]:5000"}));
    EXPECT_EQ(c.user, "u@x");
    EXPECT_EQ(c.password, "p:w");
    EXPECT_TRUE(c.token.empty());
    EXPECT_EQ(c.connect_timeout, 300ms);
    EXPECT_EQ(c.client_name, "x");
    EXPECT_TRUE(c.tls);
    const auto t = parse("nats://s3cr3t@host");
    EXPECT_EQ(t.token, "s3cr3t");
    EXPECT_TRUE(t.user.empty());
}

TEST(nats_url, errors_name_the_problem_but_never_the_secret) {
    for (const std::string& url : std::vector<std::string>{
             "nats://user:s3cr3t@host:99999", "nats://user:s3cr3t@host?bogus=1",
             "nats://user:s3cr3t@host,,other", "nats://s3cr3t@host/path",
             "nats://user:s3cr3t@host?max_pings_out=0"}) {
        try {
            parse(url);
            ADD_FAILURE() << "accepted " << redact_url(url);
        } catch (const boost::system::system_error& e) {
            EXPECT_EQ(e.code(), error::invalid_url);
            EXPECT_EQ(std::string(e.what()).find("s3cr3t"), std::string::npos) << e.what();
        }
    }
}

TEST(nats_url, subjects_nats_cannot_carry_are_refused) {
    for (const std::string& bad : std::vector<std::string>{
             "", "a b", "a\tb", "a..b", ".a", "a.", "a.*", "*", ">", "a.>", "x*y",
             std::string(detail::max_subject_bytes + 1, 'a'), std::string("nul\0byte", 8)}) {
        EXPECT_FALSE(detail::valid_nats_subject(bad)) << bad;
    }
    for (const std::string& good :
         std::vector<std::string>{"a", "chat.room-1", "room:42", "ünïcödé", "a_b.c-d"}) {
        EXPECT_TRUE(detail::valid_nats_subject(good)) << good;
    }
}

// The test harness: a server that cannot listen on its port (taken meanwhile, here by
// the test itself) is not passed for started because something else accepts there.
// (A cluster test once ran with a node that never started, and killed it to no effect.)
TEST(nats_harness, a_server_whose_port_is_taken_does_not_pass_for_started) {
    asio::io_context io;
    asio::ip::tcp::acceptor squatter(io, {asio::ip::address_v4::loopback(), 0});
    const auto port = squatter.local_endpoint().port();
    scratch_dir dir("broadcaster-nats-taken");
    EXPECT_THROW(start_nats(dir, port), std::runtime_error);
}

// nats.c may hand a subscription's callback a message queued before the subscription
// was unsubscribed, when the subscription's subject is gone (null): it is dropped.
TEST(nats, a_message_for_a_closed_subscription_is_dropped) {
    own_nats nats;
    natsConnection* nc = nullptr;
    ASSERT_EQ(natsConnection_ConnectTo(&nc, nats.url("").c_str()), NATS_OK);
    natsSubscription* sub = nullptr;
    ASSERT_EQ(natsConnection_SubscribeSync(&sub, nc, "room"), NATS_OK);
    natsMsg* msg = nullptr;
    ASSERT_EQ(natsMsg_Create(&msg, "room", nullptr, "hello", 5), NATS_OK);
    const auto open = detail::copy_delivery(sub, msg);
    ASSERT_TRUE(open);
    EXPECT_EQ(open->subscribed, "room");
    EXPECT_EQ(open->subject, "room");
    EXPECT_EQ(open->data, "hello");
    ASSERT_EQ(natsSubscription_Unsubscribe(sub), NATS_OK);
    EXPECT_FALSE(detail::copy_delivery(sub, msg));
    natsMsg_Destroy(msg);
    natsSubscription_Destroy(sub);
    natsConnection_Destroy(nc);
}

// A publisher faster than the subscribing app: nats.c's delivery thread may fall behind
// its reader, and nats.c then drops what exceeds a subscription's pending limit (65536
// messages). That was silent: a subscriber missed messages and was not told. Now every
// message arrives in order, or the subscriber gets an in-order prefix and then
// history_gap; never a silent hole.
TEST(nats, a_flood_from_a_fast_publisher_arrives_whole) {
    own_nats nats;
    constexpr int count = 250'000;
    run_async_test(
        [&](asio::io_context& io) -> asio::awaitable<void> {
            broadcast bc(io, nats.url());
            co_await bc.async_connect(use_awaitable);
            const auto channel = unique_name("flood");
            auto sub =
                co_await bc.async_subscribe(channel, subscribe_options{count}, use_awaitable);
            natsConnection* publisher = nullptr;
            BROADCASTER_REQUIRE(natsConnection_ConnectTo(&publisher, nats.url("").c_str()) ==
                                NATS_OK);
            std::thread flood([&] {
                for (int i = 0; i < count; ++i) {
                    const auto text = std::to_string(i);
                    natsConnection_Publish(publisher, channel.c_str(), text.data(),
                                           static_cast<int>(text.size()));
                }
                natsConnection_FlushTimeout(publisher, 30'000);
            });
            int received = 0;
            error_code ended;
            try {
                for (; received < count; ++received) {
                    asio::steady_timer bound(io, 10s);
                    auto next = co_await (sub.async_receive(asio::as_tuple(use_awaitable)) ||
                                          bound.async_wait(use_awaitable));
                    BROADCASTER_REQUIRE(next.index() == 0);  // not the 10 s bound
                    auto [ec, ev] = std::get<0>(std::move(next));
                    if (ec) {
                        ended = ec;
                        break;
                    }
                    if (ev.message() != std::to_string(received)) {
                        ADD_FAILURE() << "expected " << received << ", got " << ev.message();
                        break;
                    }
                }
            } catch (const std::exception& e) {
                ADD_FAILURE() << "after " << received << " messages: " << e.what();
            }
            flood.join();
            if (ended) {
                EXPECT_EQ(ended, error::history_gap) << ended.message();
            }
            natsConnection_Destroy(publisher);
            EXPECT_EQ(sub.dropped(), 0u);
        },
        120s);
}

// nats.c drops what exceeds a subscription's pending limit (65536 messages) while its
// delivery thread is behind: the bound on its memory. That loss used to be silent; now
// the subscribers of the channel and of a pattern that matched are told (history_gap),
// even when nothing is published after the drop.
TEST(nats, messages_nats_c_drops_end_the_subscribers_with_history_gap) {
    own_nats nats;
    run_async_test(
        [&](asio::io_context& io) -> asio::awaitable<void> {
            broadcast bc(io, nats.url());
            co_await bc.async_connect(use_awaitable);
            const auto base = unique_name("dropped");
            const auto channel = base + ".a";
            auto on_channel = co_await bc.async_subscribe(channel, use_awaitable);
            subscribe_options as_pattern;
            as_pattern.pattern = true;
            auto on_pattern = co_await bc.async_subscribe(base + ".*", as_pattern, use_awaitable);
            stalled_delivery_thread stall(nats.url(""));
            natsConnection* publisher = nullptr;
            BROADCASTER_REQUIRE(natsConnection_ConnectTo(&publisher, nats.url("").c_str()) ==
                                NATS_OK);
            for (int i = 0; i < 70'000; ++i) {  // more than the pending limit
                natsConnection_PublishString(publisher, channel.c_str(), "m");
            }
            natsConnection_FlushTimeout(publisher, 30'000);
            for (auto* sub : {&on_channel, &on_pattern}) {
                asio::steady_timer bound(io, 10s);
                auto next = co_await (sub->async_receive(asio::as_tuple(use_awaitable)) ||
                                      bound.async_wait(use_awaitable));
                BROADCASTER_REQUIRE(next.index() == 0);  // not the 10 s bound
                EXPECT_EQ(std::get<0>(std::get<0>(next)), error::history_gap);
            }
            stall.release();
            natsConnection_Destroy(publisher);
        },
        60s);
}

TEST(nats, invalid_channels_and_oversized_payloads_fail_before_sending) {
    scratch_dir config_dir("broadcaster-nats-conf");
    const auto config = (config_dir.path() / "nats.conf").string();
    std::ofstream(config) << "max_payload: 4096\n";
    own_nats nats({"-c", config});
    run_async_test([&](asio::io_context& io) -> asio::awaitable<void> {
        broadcast bc(io, nats.url());
        co_await bc.async_connect(use_awaitable);
        const std::vector<std::string> bad_channels{"a b", "a.*", "a.>", "a..b"};
        for (const auto& bad : bad_channels) {
            auto [ec, sub] = co_await bc.async_subscribe(bad, asio::as_tuple(use_awaitable));
            EXPECT_EQ(ec, error::invalid_channel) << bad;
            auto [pec] = co_await bc.async_publish(bad, "x", asio::as_tuple(use_awaitable));
            EXPECT_EQ(pec, error::invalid_channel) << bad;
        }
        // The server's max_payload is the limit: at it passes, one byte more fails.
        const auto channel = unique_name("payload");
        auto sub = co_await bc.async_subscribe(channel, use_awaitable);
        co_await bc.async_publish(channel, std::string(4096, 'x'), use_awaitable);
        EXPECT_EQ((co_await receive(sub)).message().size(), 4096u);
        auto [ec] = co_await bc.async_publish(channel, std::string(4097, 'x'),
                                              asio::as_tuple(use_awaitable));
        EXPECT_EQ(ec, error::payload_too_large);
    });
}

// nats.c closes a connection for good after a server error it does not retry (here:
// a subscription over the server's max_subscriptions). That used to leave the broadcast
// `reconnecting` for ever, its subscribers waiting in silence; now it is disconnected
// with the reason, its subscribers end, and it can connect again.
TEST(nats, a_connection_nats_c_gives_up_on_disconnects_the_broadcast) {
    scratch_dir config_dir("broadcaster-nats-conf");
    const auto config = (config_dir.path() / "nats.conf").string();
    std::ofstream(config) << "max_subscriptions: 3\n";  // ours: the marker's, then two
    own_nats nats({"-c", config});
    run_async_test([&](asio::io_context& io) -> asio::awaitable<void> {
        broadcast bc(io, nats.url());
        std::vector<std::pair<connection_state, error_code>> states;
        bc.on_state_change([&](connection_state s, error_code ec) { states.emplace_back(s, ec); });
        co_await bc.async_connect(use_awaitable);
        const auto base = unique_name("limited");
        auto first = co_await bc.async_subscribe(base + ".1", use_awaitable);
        auto second = co_await bc.async_subscribe(base + ".2", use_awaitable);
        auto [ec, third] = co_await bc.async_subscribe(base + ".3", asio::as_tuple(use_awaitable));
        EXPECT_TRUE(ec);
        co_await eventually([&] {
            return !states.empty() && states.back().first == connection_state::disconnected;
        });
        EXPECT_EQ(states.back().second, error::broker_error);
        for (auto* sub : {&first, &second}) {
            auto [end, ev] = co_await sub->async_receive(asio::as_tuple(use_awaitable));
            EXPECT_EQ(end, error::end_of_stream);
        }
        co_await bc.async_connect(use_awaitable);
        auto again = co_await bc.async_subscribe(base + ".1", use_awaitable);
        co_await bc.async_publish(base + ".1", "again", use_awaitable);
        EXPECT_EQ((co_await receive(again)).message(), "again");
    });
}

subscribe_options patterns() {
    subscribe_options options;
    options.pattern = true;
    return options;
}

TEST(nats_url, patterns_are_nats_wildcard_subjects) {
    for (const std::string good : {"a.*", "*", ">", "a.>", "a.*.c", "*.*.>"}) {
        EXPECT_TRUE(detail::valid_nats_pattern(good)) << good;
    }
    // Wildcards inside tokens, `>` before the end, empty tokens, and no wildcard at all
    // (a channel, not a pattern).
    for (const std::string bad :
         {"", "a", "a.b", "a*", "a.*b", "a.>.b", "a..*", ".*", "*.", "a.* .b", "> "}) {
        EXPECT_FALSE(detail::valid_nats_pattern(bad)) << bad;
    }
}

TEST(nats, a_pattern_receives_every_matching_channel_with_its_name) {
    own_nats nats;
    run_async_test([&](asio::io_context& io) -> asio::awaitable<void> {
        broadcast bc(io, nats.url());
        co_await bc.async_connect(use_awaitable);
        const auto root = unique_name("orders");
        auto one = co_await bc.async_subscribe(root + ".*", patterns(), use_awaitable);
        auto rest = co_await bc.async_subscribe(root + ".>", patterns(), use_awaitable);
        for (const auto& channel :
             {root + ".eu", root + ".eu.late", "x" + root + ".us", root + ".us"}) {
            co_await bc.async_publish(channel, "on " + channel, use_awaitable);
        }
        auto ev = co_await receive(one);
        EXPECT_EQ(ev.channel(), root + ".eu");
        EXPECT_EQ(ev.message(), "on " + root + ".eu");
        EXPECT_EQ((co_await receive(one)).channel(), root + ".us");  // one token only
        EXPECT_EQ((co_await receive(rest)).channel(), root + ".eu");
        EXPECT_EQ((co_await receive(rest)).channel(), root + ".eu.late");
        EXPECT_EQ((co_await receive(rest)).channel(), root + ".us");
        EXPECT_FALSE(one.try_receive().has_value());
        EXPECT_FALSE(rest.try_receive().has_value());
        EXPECT_EQ(bc.stats().active_channels, 2u);
    });
}

TEST(nats, a_channel_and_a_pattern_that_matches_it_each_get_the_event_once) {
    own_nats nats;
    run_async_test([&](asio::io_context& io) -> asio::awaitable<void> {
        broadcast bc(io, nats.url());
        co_await bc.async_connect(use_awaitable);
        const auto channel = unique_name("room") + ".a";
        const auto pattern = channel.substr(0, channel.size() - 2) + ".*";
        auto plain = co_await bc.async_subscribe(channel, use_awaitable);
        auto matching = co_await bc.async_subscribe(pattern, patterns(), use_awaitable);
        co_await bc.async_publish(channel, "1", use_awaitable);
        co_await bc.async_publish(channel, "2", use_awaitable);
        EXPECT_EQ((co_await receive(plain)).message(), "1");
        EXPECT_EQ((co_await receive(plain)).message(), "2");
        EXPECT_EQ((co_await receive(matching)).message(), "1");
        EXPECT_EQ((co_await receive(matching)).message(), "2");
        // The pattern leaves; the channel's subscriber still gets each event once.
        matching = subscriber();
        co_await bc.async_publish(channel, "3", use_awaitable);
        EXPECT_EQ((co_await receive(plain)).message(), "3");
        EXPECT_FALSE(plain.try_receive().has_value());
    });
}

TEST(nats, invalid_patterns_are_refused_and_patterns_survive_a_server_restart) {
    own_nats nats;
    run_async_test([&](asio::io_context& io) -> asio::awaitable<void> {
        broadcast bc(io, nats.url());
        state_log log;
        log.attach(bc);
        co_await bc.async_connect(use_awaitable);
        for (const std::string bad : {"a.*b", "a.>.b", "plain.channel"}) {
            auto [ec, sub] =
                co_await bc.async_subscribe(bad, patterns(), asio::as_tuple(use_awaitable));
            EXPECT_EQ(ec, error::invalid_channel) << bad;
        }
        const auto root = unique_name("restart");
        auto sub = co_await bc.async_subscribe(root + ".>", patterns(), use_awaitable);
        nats.server->crash_and_restart();
        co_await eventually([&] {
            return std::count(log.states.begin(), log.states.end(), connection_state::connected) >=
                   2;
        });
        co_await bc.async_publish(root + ".x.y", "after", use_awaitable);
        const auto ev = co_await receive(sub, 10s);
        EXPECT_EQ(ev.channel(), root + ".x.y");
        EXPECT_EQ(ev.message(), "after");
    });
}

TEST(nats, a_wrong_token_fails_the_connect_without_naming_it) {
    own_nats nats({"--auth", "right-token"});
    run_async_test([&](asio::io_context& io) -> asio::awaitable<void> {
        broadcast wrong(io, "nats://wrong-token@127.0.0.1:" + std::to_string(nats.port));
        auto [ec] = co_await wrong.async_connect(asio::as_tuple(use_awaitable));
        EXPECT_EQ(ec, error::authentication_failed);
        broadcast right(io, "nats://right-token@127.0.0.1:" + std::to_string(nats.port));
        co_await right.async_connect(use_awaitable);
        const auto channel = unique_name("auth");
        auto sub = co_await right.async_subscribe(channel, use_awaitable);
        co_await right.async_publish(channel, "in", use_awaitable);
        EXPECT_EQ((co_await receive(sub)).message(), "in");
    });
}

TEST(nats, an_unreachable_server_fails_the_connect_within_the_timeout) {
    const auto port = free_port();  // nobody listens
    run_async_test([&](asio::io_context& io) -> asio::awaitable<void> {
        broadcast bc(io, "nats://127.0.0.1:" + std::to_string(port) + "?connect_timeout_ms=500");
        auto [ec] = co_await bc.async_connect(asio::as_tuple(use_awaitable));
        EXPECT_EQ(ec, error::unreachable);
    });
}

TEST(nats, subscriptions_survive_a_server_restart) {
    own_nats nats;
    run_async_test([&](asio::io_context& io) -> asio::awaitable<void> {
        broadcast bc(io, nats.url());
        state_log log;
        log.attach(bc);
        co_await bc.async_connect(use_awaitable);
        const auto a_channel = unique_name("restart-a");
        const auto b_channel = unique_name("restart-b");
        auto a = co_await bc.async_subscribe(a_channel, use_awaitable);
        auto b = co_await bc.async_subscribe(b_channel, use_awaitable);
        co_await bc.async_publish(a_channel, "before", use_awaitable);
        EXPECT_EQ((co_await receive(a)).message(), "before");

        nats.server->crash_and_restart();  // kill -9, then start on the same port

        co_await eventually([&] { return log.saw(connection_state::reconnecting); });
        co_await eventually([&] { return log.states.back() == connection_state::connected; });
        co_await bc.async_publish(b_channel, "after-b", use_awaitable);
        EXPECT_EQ((co_await receive(b)).message(), "after-b");
        co_await bc.async_publish(a_channel, "after-a", use_awaitable);
        EXPECT_EQ((co_await receive(a)).message(), "after-a");
        EXPECT_EQ(bc.stats().reconnects, 1u);
    });
}

// Publishes made while the server is down wait for it (within publish_timeout_ms) and
// reach this broadcast's own subscribers once it is back.
TEST(nats, publishes_during_an_outage_wait_for_the_server) {
    own_nats nats;
    run_async_test([&](asio::io_context& io) -> asio::awaitable<void> {
        broadcast bc(io, nats.url(std::string(fast_reconnect) + "&publish_timeout_ms=10000"));
        state_log log;
        log.attach(bc);
        co_await bc.async_connect(use_awaitable);
        const auto channel = unique_name("outage");
        auto sub = co_await bc.async_subscribe(channel, use_awaitable);
        nats.server->stop(SIGKILL);
        co_await eventually([&] { return log.saw(connection_state::reconnecting); });
        std::optional<error_code> published;
        bc.async_publish(channel, "while-down", [&](error_code ec) { published = ec; });
        nats.server->start();
        co_await eventually([&] { return published.has_value(); }, 10s);
        EXPECT_FALSE(*published) << published->message();
        EXPECT_EQ((co_await receive(sub)).message(), "while-down");
    });
}

// nats.c attaches the new socket from its reconnect thread, but reports the loss and
// the reconnect from its callback thread, which a busy machine can hold up. The loss is
// taken from the event loop's side, at once, and the late report must not close the new
// connection (it did: the subscriber never received again and `connected` never came).
TEST(nats, a_reconnect_reported_late_by_nats_c_keeps_the_new_connection) {
    own_nats nats;
    run_async_test([&](asio::io_context& io) -> asio::awaitable<void> {
        broadcast bc(io, nats.url());
        state_log log;
        log.attach(bc);
        co_await bc.async_connect(use_awaitable);
        const auto channel = unique_name("overtaken");
        auto sub = co_await bc.async_subscribe(channel, use_awaitable);
        {
            stalled_callback_thread stall(nats.url(""));
            nats.server->stop(SIGKILL);
            co_await eventually([&] { return log.saw(connection_state::reconnecting); });
            nats.server->start();
            broadcast pub(io, nats.url());
            co_await pub.async_connect(use_awaitable);
            // nats.c resubscribed on the new socket: probes reach the subscriber while
            // its callback thread is still held.
            asio::steady_timer pace(io);
            for (int probe = 0; !sub.try_receive(); ++probe) {
                BROADCASTER_REQUIRE(probe < 1000);
                co_await pub.async_publish(channel, "probe", use_awaitable);
                pace.expires_after(10ms);
                co_await pace.async_wait(use_awaitable);
            }
            EXPECT_EQ(log.states.back(), connection_state::reconnecting);
        }
        co_await eventually([&] { return log.states.back() == connection_state::connected; });
        co_await bc.async_publish(channel, "after", use_awaitable);
        auto ev = co_await receive(sub);
        while (ev.message() == "probe") {
            ev = co_await receive(sub);
        }
        EXPECT_EQ(ev.message(), "after");
    });
}

// nats.c's reconnect thread holds the connection's lock through a whole handshake, here
// with a server that accepts and never answers. A publish meanwhile must not wait for that
// lock on the I/O thread (it did, for the whole connect timeout): it is held, and fails
// after its own publish_timeout_ms while the handshake still hangs.
TEST(nats, a_publish_during_a_hanging_reconnect_does_not_block_the_io_thread) {
    own_nats nats;
    run_async_test([&](asio::io_context& io) -> asio::awaitable<void> {
        silent_server hanging(io);
        broadcast bc(io, "nats://127.0.0.1:" + std::to_string(nats.port) +
                             ",127.0.0.1:" + std::to_string(hanging.port()) + "?" + fast_reconnect +
                             "&connect_timeout_ms=2000&publish_timeout_ms=100");
        state_log log;
        log.attach(bc);
        co_await bc.async_connect(use_awaitable);  // may have tried the hanging one first
        const int accepted = hanging.accepted();
        const int closed = hanging.closed_by_client();
        nats.server->stop(SIGKILL);
        co_await eventually([&] { return log.saw(connection_state::reconnecting); });
        co_await eventually([&] { return hanging.accepted() > accepted; }, 10s);
        auto [ec] =
            co_await bc.async_publish(unique_name("held"), "x", asio::as_tuple(use_awaitable));
        EXPECT_EQ(ec, error::reconnect_timeout);
        EXPECT_EQ(hanging.closed_by_client(), closed);  // the handshake still hangs
    });
}

// Without a server, a publish fails after publish_timeout_ms and is never sent later.
TEST(nats, a_publish_fails_after_the_publish_timeout_and_is_not_sent_later) {
    own_nats nats;
    run_async_test([&](asio::io_context& io) -> asio::awaitable<void> {
        broadcast bc(io, nats.url(std::string(fast_reconnect) + "&publish_timeout_ms=200"));
        state_log log;
        log.attach(bc);
        co_await bc.async_connect(use_awaitable);
        const auto channel = unique_name("late");
        auto sub = co_await bc.async_subscribe(channel, use_awaitable);
        nats.server->stop(SIGKILL);
        co_await eventually([&] { return log.saw(connection_state::reconnecting); });
        auto [ec] = co_await bc.async_publish(channel, "too-late", asio::as_tuple(use_awaitable));
        EXPECT_EQ(ec, error::reconnect_timeout);
        nats.server->start();
        co_await eventually([&] { return log.states.back() == connection_state::connected; });
        co_await bc.async_publish(channel, "next", use_awaitable);
        EXPECT_EQ((co_await receive(sub)).message(), "next");  // not "too-late"
    });
}

// Our bounded per-subscriber queues apply: a subscriber that never reads drops its
// oldest events (counted), and the other subscriber of the channel gets all of them in
// order. NATS's own slow-consumer limit never applies: the backend hands each message
// to the strand at once, and delivery to the subscribers' queues never waits.
TEST(nats, a_slow_subscriber_does_not_stall_the_others) {
    run_async_test([&](asio::io_context& io) -> asio::awaitable<void> {
        broadcast bc(io, nats_test_url());
        co_await bc.async_connect(use_awaitable);
        const auto channel = unique_name("slow");
        auto slow = co_await bc.async_subscribe(channel, subscribe_options{16}, use_awaitable);
        auto fast = co_await bc.async_subscribe(channel, subscribe_options{100'000}, use_awaitable);
        constexpr int count = 5000;
        co_await publish_numbered(bc, channel, count);
        for (int i = 0; i < count; ++i) {
            BROADCASTER_REQUIRE((co_await receive(fast)).message() == std::to_string(i));
        }
        EXPECT_EQ(slow.dropped(), static_cast<std::uint64_t>(count - 16));
    });
}

// Three nats-servers in a cluster; the publisher on node 0, subscribers on nodes 1 and
// 2. Node 2 is killed during the stream: node 1's subscriber misses nothing, and node
// 2's subscriber resumes on a surviving node (nats.c fails over to the servers the
// cluster announced).
TEST(nats, a_cluster_keeps_delivering_when_a_node_dies) {
    scratch_dir dirs[3] = {scratch_dir("broadcaster-nats-0"), scratch_dir("broadcaster-nats-1"),
                           scratch_dir("broadcaster-nats-2")};
    unsigned short client_ports[3];
    unsigned short route_ports[3];
    for (int i = 0; i < 3; ++i) {
        client_ports[i] = free_port();
        route_ports[i] = free_port();
    }
    std::string routes;
    for (int i = 0; i < 3; ++i) {
        routes +=
            (i ? "," : "") + std::string("nats://127.0.0.1:") + std::to_string(route_ports[i]);
    }
    std::unique_ptr<server_process> nodes[3];
    for (int i = 0; i < 3; ++i) {
        nodes[i] =
            start_nats(dirs[i], client_ports[i],
                       {"--cluster_name", "bc", "--cluster",
                        "nats://127.0.0.1:" + std::to_string(route_ports[i]), "--routes", routes});
    }
    const auto node_url = [&](int i) {
        return "nats://127.0.0.1:" + std::to_string(client_ports[i]) + "?" + fast_reconnect;
    };
    run_async_test(
        [&](asio::io_context& io) -> asio::awaitable<void> {
            broadcast pub(io, node_url(0));
            broadcast sub1_bc(io, node_url(1));
            broadcast sub2_bc(io, node_url(2));
            state_log log2;
            log2.attach(sub2_bc);
            co_await pub.async_connect(use_awaitable);
            co_await sub1_bc.async_connect(use_awaitable);
            co_await sub2_bc.async_connect(use_awaitable);
            const auto channel = unique_name("cluster");
            auto sub1 = co_await sub1_bc.async_subscribe(channel, subscribe_options{100'000},
                                                         use_awaitable);
            auto sub2 = co_await sub2_bc.async_subscribe(channel, subscribe_options{100'000},
                                                         use_awaitable);
            // A subscribe is confirmed by its own node; the cluster learns of it a little
            // later (route interest propagation). Probes until both have one.
            bool got1 = false;
            bool got2 = false;
            asio::steady_timer pace(io);
            for (int probe = 0; !(got1 && got2); ++probe) {
                BROADCASTER_REQUIRE(probe < 500);
                co_await pub.async_publish(channel, "probe", use_awaitable);
                pace.expires_after(10ms);
                co_await pace.async_wait(use_awaitable);
                while (auto ev = sub1.try_receive()) {
                    got1 = true;
                }
                while (auto ev = sub2.try_receive()) {
                    got2 = true;
                }
            }
            constexpr int count = 600;
            constexpr int kill_at = 200;
            for (int i = 0; i < count; ++i) {
                if (i == kill_at) {
                    nodes[2]->stop(SIGKILL);
                }
                co_await pub.async_publish(channel, std::to_string(i), use_awaitable);
            }
            // Node 1's subscriber: everything, in order, nothing else.
            for (int i = 0; i < count; ++i) {
                auto ev = co_await receive(sub1);
                while (ev.message() == "probe") {
                    ev = co_await receive(sub1);
                }
                BROADCASTER_REQUIRE(ev.message() == std::to_string(i));
            }
            // Node 2's subscriber moved to a surviving node and receives again.
            co_await eventually([&] { return log2.saw(connection_state::reconnecting); });
            co_await eventually([&] { return log2.states.back() == connection_state::connected; },
                                10s);
            bool resumed = false;
            for (int probe = 0; !resumed; ++probe) {
                BROADCASTER_REQUIRE(probe < 500);
                co_await pub.async_publish(channel, "after", use_awaitable);
                pace.expires_after(10ms);
                co_await pace.async_wait(use_awaitable);
                while (auto ev = sub2.try_receive()) {
                    resumed = resumed || ev->message() == "after";
                }
            }
        },
        60s);
}

}  // namespace
}  // namespace broadcaster::test
