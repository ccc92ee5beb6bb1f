// nats:// with JetStream history (`?jetstream=STREAM`) against real nats-server
// processes with JetStream on: the option, a server restart while a publisher keeps
// publishing, and a gap the stream's retention made during an outage. The history
// conformance suite covers positions, `since`, `last` and trimmed positions.

#include "backends/nats/nats_config.hpp"
#include "stalled_delivery_thread.hpp"
#include "test_servers.hpp"
#include "test_support.hpp"

#include <broadcaster/url.hpp>

#include <boost/asio/as_tuple.hpp>

#include <nats/nats.h>

#include <algorithm>

namespace broadcaster::test {
namespace {

using asio::use_awaitable;
using boost::system::error_code;
using namespace asio::experimental::awaitable_operators;

constexpr const char* fast_reconnect = "reconnect_min_ms=20&reconnect_max_ms=200";

// A JetStream nats-server of the test's own; a restart keeps its store directory.
struct own_jetstream {
    scratch_dir dir{"broadcaster-nats-js-own"};
    unsigned short port = free_port();
    std::unique_ptr<server_process> server =
        start_nats(dir, port, {"-js", "-sd", (dir.path() / "js").string()});
    std::string url(const std::string& query) const { return server_url() + "?" + query; }
    // For nats.c itself.
    std::string server_url() const { return "nats://127.0.0.1:" + std::to_string(port); }
};

detail::nats_config parse(const std::string& url) {
    return detail::parse_nats_url(backend_config{url, redact_url(url), {}});
}

TEST(nats_jetstream_url, the_stream_and_its_retention) {
    const auto config = parse("nats://u:secret@h:1?jetstream=CHAT-1&history=50");
    EXPECT_EQ(config.stream, "CHAT-1");
    EXPECT_EQ(config.history, 50);
    EXPECT_EQ(config.stored_subject("room.a"), "broadcaster.CHAT-1.room.a");
    EXPECT_EQ(config.live_prefix(), "broadcaster-live.CHAT-1.");
    EXPECT_TRUE(parse("nats://h").stream.empty());
    for (const char* bad : {"nats://u:secret@h?jetstream=", "nats://u:secret@h?jetstream=a.b",
                            "nats://u:secret@h?jetstream=a*", "nats://u:secret@h?history=5",
                            "nats://u:secret@h?jetstream=S&history=0"}) {
        try {
            parse(bad);
            ADD_FAILURE() << bad;
        } catch (const boost::system::system_error& e) {
            EXPECT_EQ(e.code(), error::invalid_url) << bad;
            EXPECT_EQ(std::string(e.what()).find("secret"), std::string::npos) << e.what();
        }
    }
}

TEST(nats_jetstream, without_the_option_there_is_no_history) {
    run_async_test([&](asio::io_context& io) -> asio::awaitable<void> {
        broadcast bc(io, nats_jetstream_test_url());
        co_await bc.async_connect(use_awaitable);
        const auto channel = unique_name("plain");
        auto sub = co_await bc.async_subscribe(channel, use_awaitable);
        co_await bc.async_publish(channel, "m", use_awaitable);
        EXPECT_TRUE((co_await receive(sub)).position().empty());
        auto [ec, events] = co_await bc.async_history(channel, 5, asio::as_tuple(use_awaitable));
        EXPECT_EQ(ec, error::history_not_supported);
    });
}

// A stream made with `history=5` serves a broadcast without `history` too: the shape is
// the same, the retention the one it was made with.
TEST(nats_jetstream, broadcasts_share_a_stream_whatever_their_history) {
    run_async_test([&](asio::io_context& io) -> asio::awaitable<void> {
        const auto name = unique_name("shared");
        broadcast first(io, nats_jetstream_test_url() + "?jetstream=" + name + "&history=5");
        co_await first.async_connect(use_awaitable);
        broadcast second(io, nats_jetstream_test_url() + "?jetstream=" + name);
        co_await second.async_connect(use_awaitable);
        const auto channel = unique_name("shared");
        auto sub = co_await second.async_subscribe(channel, use_awaitable);
        co_await publish_numbered(first, channel, 8);
        for (int i = 0; i < 8; ++i) {
            const auto ev = co_await receive(sub);
            EXPECT_EQ(ev.message(), std::to_string(i));
            EXPECT_FALSE(ev.position().empty());
        }
        EXPECT_EQ((co_await second.async_history(channel, 0, use_awaitable)).size(), 5u);
    });
}

// A stream of that name that does not store and republish our subjects is not ours to
// use: the connect fails (error::broker_error) rather than publishing where nothing is
// kept.
TEST(nats_jetstream, a_stream_of_another_shape_fails_the_connect) {
    const auto name = unique_name("other");
    {
        natsConnection* nc = nullptr;
        ASSERT_EQ(natsConnection_ConnectTo(&nc, nats_jetstream_test_url().c_str()), NATS_OK);
        jsCtx* js = nullptr;
        ASSERT_EQ(natsConnection_JetStream(&js, nc, nullptr), NATS_OK);
        jsStreamConfig cfg;
        jsStreamConfig_Init(&cfg);
        const auto subject = name + ".>";
        const char* subjects[] = {subject.c_str()};
        cfg.Name = name.c_str();
        cfg.Subjects = subjects;
        cfg.SubjectsLen = 1;
        jsStreamInfo* si = nullptr;
        EXPECT_EQ(js_AddStream(&si, js, &cfg, nullptr, nullptr), NATS_OK);
        jsStreamInfo_Destroy(si);
        jsCtx_Destroy(js);
        natsConnection_Destroy(nc);
    }
    run_async_test([&](asio::io_context& io) -> asio::awaitable<void> {
        broadcast bc(io, nats_jetstream_test_url() + "?jetstream=" + name);
        auto [ec] = co_await bc.async_connect(asio::as_tuple(use_awaitable));
        EXPECT_EQ(ec, error::broker_error);
    });
}

// kill -9 and a restart on the same port and store directory while a publisher keeps
// publishing: the subscriber receives every acknowledged message, in order, once.
TEST(nats_jetstream, a_server_restart_while_publishing_loses_no_acknowledged_message) {
    own_jetstream nats;
    run_async_test(
        [&](asio::io_context& io) -> asio::awaitable<void> {
            // The subscriber comes back later than the publisher: what is stored meanwhile
            // only reaches it through its catch-up read.
            broadcast subscribing(
                io, nats.url("reconnect_min_ms=400&reconnect_max_ms=400&jetstream=restart"));
            broadcast publishing(io, nats.url(std::string(fast_reconnect) +
                                              "&jetstream=restart&publish_timeout_ms=10000"));
            state_log log;
            log.attach(subscribing);
            co_await subscribing.async_connect(use_awaitable);
            co_await publishing.async_connect(use_awaitable);
            const auto channel = unique_name("js-restart");
            subscribe_options roomy;
            roomy.capacity = 100'000;
            auto sub = co_await subscribing.async_subscribe(channel, roomy, use_awaitable);

            std::vector<int> acknowledged;
            int failed = 0;
            int after_restart = 0;
            constexpr int restart_at = 300;
            for (int i = 0; after_restart < 300 && i < 100'000; ++i) {
                if (i == restart_at) {
                    nats.server->crash_and_restart();
                }
                auto [ec] = co_await publishing.async_publish(channel, std::to_string(i),
                                                              asio::as_tuple(use_awaitable));
                if (ec) {
                    ++failed;  // stored or not: may arrive, or not
                    continue;
                }
                acknowledged.push_back(i);
                if (i >= restart_at) {
                    ++after_restart;
                }
            }
            std::vector<int> received;
            std::string position;
            while (received.empty() || received.back() != acknowledged.back()) {
                const auto ev = co_await receive(sub, 10s);
                const int n = std::stoi(std::string(ev.message()));
                BROADCASTER_REQUIRE(received.empty() || n > received.back());  // in order, once
                BROADCASTER_REQUIRE(!ev.position().empty());
                if (!position.empty()) {
                    BROADCASTER_REQUIRE(std::stoull(position) <
                                        std::stoull(std::string(ev.position())));
                }
                position = ev.position();
                received.push_back(n);
            }
            EXPECT_TRUE(std::includes(received.begin(), received.end(), acknowledged.begin(),
                                      acknowledged.end()));
            EXPECT_TRUE(log.saw(connection_state::reconnecting));
            EXPECT_EQ(sub.dropped(), 0u);
            EXPECT_FALSE(sub.try_receive());
            std::cout << "acknowledged " << acknowledged.size() << ", failed " << failed
                      << ", received " << received.size() << "\n";
        },
        120s);
}

// The subscriber's connection stays down (a long reconnect backoff) while the publisher
// is back and publishes more than the stream keeps per channel: the subscriber gets
// what it had, then error::history_gap; what is kept can still be had.
TEST(nats_jetstream, a_gap_the_retention_made_during_an_outage_is_reported) {
    own_jetstream nats;
    run_async_test(
        [&](asio::io_context& io) -> asio::awaitable<void> {
            broadcast subscribing(
                io,
                nats.url("reconnect_min_ms=4000&reconnect_max_ms=4000&jetstream=gap&history=5"));
            broadcast publishing(io, nats.url(std::string(fast_reconnect) +
                                              "&jetstream=gap&history=5&publish_timeout_ms=10000"));
            state_log log;
            log.attach(subscribing);
            co_await subscribing.async_connect(use_awaitable);
            co_await publishing.async_connect(use_awaitable);
            const auto channel = unique_name("js-gap");
            auto sub = co_await subscribing.async_subscribe(channel, use_awaitable);
            co_await publishing.async_publish(channel, "before", use_awaitable);
            EXPECT_EQ((co_await receive(sub)).message(), "before");

            nats.server->crash_and_restart();
            co_await eventually([&] { return log.saw(connection_state::reconnecting); });
            // Published (acknowledged, so stored) before the subscriber is back: its
            // backoff is 2 to 4 s, and it cannot have reconnected while these wait.
            int acknowledged = 0;
            for (int i = 0; i < 10;) {
                auto [ec] = co_await publishing.async_publish(channel, std::to_string(i),
                                                              asio::as_tuple(use_awaitable));
                if (!ec) {
                    ++acknowledged;
                    ++i;
                }
            }
            EXPECT_EQ(log.states.back(), connection_state::reconnecting);
            auto [ec, ev] = co_await sub.async_receive(asio::as_tuple(use_awaitable));
            EXPECT_EQ(ec, error::history_gap);
            auto last = co_await publishing.async_history(channel, 0, use_awaitable);
            BROADCASTER_REQUIRE(last.size() == 5u);
            EXPECT_EQ(last.front().message(), "5");
            EXPECT_EQ(last.back().message(), "9");
        },
        60s);
}

}  // namespace
}  // namespace broadcaster::test

namespace broadcaster::test {
namespace {

// The stream republishes each message with headers: a payload must leave room for them
// within the server's max_payload (1 MiB here), and is refused before it is sent if not.
TEST(nats_jetstream, payloads_leave_room_for_the_republished_headers) {
    run_async_test([&](asio::io_context& io) -> asio::awaitable<void> {
        broadcast bc(io, nats_jetstream_test_url() + "?jetstream=payloads");
        co_await bc.async_connect(use_awaitable);
        const auto channel = unique_name("big");
        auto sub = co_await bc.async_subscribe(channel, use_awaitable);
        auto [ec] = co_await bc.async_publish(channel, std::string(1024 * 1024 - 100, 'x'),
                                              asio::as_tuple(use_awaitable));
        EXPECT_EQ(ec, error::payload_too_large);
        co_await bc.async_publish(channel, std::string(1024 * 1024 - 2048, 'y'), use_awaitable);
        const auto ev = co_await receive(sub);
        EXPECT_EQ(ev.message().size(), 1024u * 1024 - 2048);
        EXPECT_FALSE(ev.position().empty());
    });
}

// A pattern subscriber receives the stream's events with their positions and channels.
TEST(nats_jetstream, a_pattern_receives_events_with_positions) {
    run_async_test([&](asio::io_context& io) -> asio::awaitable<void> {
        broadcast bc(io, nats_jetstream_test_url() + "?jetstream=patterns");
        co_await bc.async_connect(use_awaitable);
        const auto root = unique_name("root");
        subscribe_options options;
        options.pattern = true;
        auto sub = co_await bc.async_subscribe(root + ".*", options, use_awaitable);
        co_await bc.async_publish(root + ".a", "1", use_awaitable);
        co_await bc.async_publish(root + ".b", "2", use_awaitable);
        const auto a = co_await receive(sub);
        const auto b = co_await receive(sub);
        EXPECT_EQ(a.channel(), root + ".a");
        EXPECT_EQ(b.channel(), root + ".b");
        EXPECT_LT(std::stoull(std::string(a.position())), std::stoull(std::string(b.position())));
    });
}

}  // namespace
}  // namespace broadcaster::test

namespace broadcaster::test {
namespace {

// With history, what nats.c drops past a subscription's pending limit (65536 messages)
// while its delivery thread is behind is read from the stream: the subscriber gets
// every message, in order, once. (A pattern has no stream to read: it is told.)
TEST(nats_jetstream, messages_nats_c_drops_are_read_from_the_stream) {
    own_jetstream nats;
    run_async_test(
        [&](asio::io_context& io) -> asio::awaitable<void> {
            const auto url = nats.url("jetstream=drops&history=100000");
            broadcast bc(io, url);
            co_await bc.async_connect(use_awaitable);
            const auto base = unique_name("js-dropped");
            const auto channel = base + ".a";
            subscribe_options roomy;
            roomy.capacity = 100'000;
            auto on_channel = co_await bc.async_subscribe(channel, roomy, use_awaitable);
            subscribe_options as_pattern;
            as_pattern.pattern = true;
            auto on_pattern = co_await bc.async_subscribe(base + "-z.*", as_pattern, use_awaitable);

            stalled_delivery_thread stall(nats.server_url());
            natsConnection* publisher = nullptr;
            BROADCASTER_REQUIRE(natsConnection_ConnectTo(&publisher, nats.server_url().c_str()) ==
                                NATS_OK);
            // Stored, then republished to the broadcast in the stream's order: the
            // pattern's flood comes after the channel's, so once the pattern overflows
            // (and is told), the channel has overflowed too.
            const auto config = parse(url);
            constexpr int count = 70'000;  // more than the pending limit
            for (int i = 0; i < count; ++i) {
                const auto text = std::to_string(i);
                natsConnection_PublishString(publisher, config.stored_subject(channel).c_str(),
                                             text.c_str());
            }
            for (int i = 0; i < count; ++i) {
                natsConnection_PublishString(publisher,
                                             config.stored_subject(base + "-z.x").c_str(), "z");
            }
            natsConnection_FlushTimeout(publisher, 30'000);
            {
                asio::steady_timer bound(io, 20s);
                auto next = co_await (on_pattern.async_receive(asio::as_tuple(use_awaitable)) ||
                                      bound.async_wait(use_awaitable));
                BROADCASTER_REQUIRE(next.index() == 0);  // not the bound
                EXPECT_EQ(std::get<0>(std::get<0>(next)), error::history_gap);
            }
            stall.release();
            for (int i = 0; i < count; ++i) {
                const auto ev = co_await receive(on_channel, 20s);
                BROADCASTER_REQUIRE(ev.message() == std::to_string(i));
            }
            EXPECT_FALSE(on_channel.try_receive());
            EXPECT_EQ(on_channel.dropped(), 0u);
            natsConnection_Destroy(publisher);
        },
        120s);
}

}  // namespace
}  // namespace broadcaster::test
