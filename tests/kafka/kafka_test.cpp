// The Kafka backend against librdkafka's mock cluster (broadcaster-kafka-mock, three
// brokers): subscribe-at-high-watermark, partial unsubscribe, broadcast semantics,
// brokers down and up, broker lists and URL errors. The conformance suite covers the
// rest.

#include "test_servers.hpp"
#include "test_support.hpp"

#include <boost/asio/as_tuple.hpp>

#include <set>

namespace broadcaster::test {
namespace {

using asio::use_awaitable;
using boost::system::error_code;

// Receives `count` messages and checks they are exactly 0..count-1 (in order: one
// channel's messages share a partition).
asio::awaitable<void> receive_numbered(subscriber& sub, int count) {
    for (int i = 0; i < count; ++i) {
        BROADCASTER_REQUIRE((co_await receive(sub)).message() == std::to_string(i));
    }
}

TEST(kafka, publishing_right_after_subscribe_loses_nothing) {
    kafka_mock cluster;
    const auto existing = unique_name("existing");
    const auto eight = unique_name("eight-partitions");
    cluster.create_topic(existing, 4);
    cluster.create_topic(eight, 8);
    run_async_test([&](asio::io_context& io) -> asio::awaitable<void> {
        broadcast publisher(io, cluster.url());
        co_await publisher.async_connect(use_awaitable);
        // Old messages on an existing topic are not delivered: only what comes after.
        co_await publish_numbered(publisher, existing, 50);

        const std::vector<std::string> channels{existing, eight, unique_name("new")};
        for (const auto& channel : channels) {
            broadcast bc(io, cluster.url());
            co_await bc.async_connect(use_awaitable);
            auto sub = co_await bc.async_subscribe(channel, subscribe_options(1000), use_awaitable);
            co_await publish_numbered(publisher, channel, 200);
            co_await receive_numbered(sub, 200);
            EXPECT_EQ(sub.try_receive().has_value(), false) << channel;
        }
    });
}

TEST(kafka, messages_from_many_publishers_all_arrive) {
    const auto url = kafka_test_url();
    run_async_test([&](asio::io_context& io) -> asio::awaitable<void> {
        broadcast bc(io, url);
        co_await bc.async_connect(use_awaitable);
        const auto channel = unique_name("spread");
        auto sub = co_await bc.async_subscribe(channel, subscribe_options(1000), use_awaitable);
        std::vector<std::unique_ptr<broadcast>> publishers;
        for (int p = 0; p < 8; ++p) {
            publishers.push_back(std::make_unique<broadcast>(io, url));
            co_await publishers.back()->async_connect(use_awaitable);
            co_await publishers.back()->async_publish(channel, "from " + std::to_string(p),
                                                      use_awaitable);
        }
        std::set<std::string> received;
        for (int p = 0; p < 8; ++p) {
            received.insert(std::string((co_await receive(sub)).message()));
        }
        EXPECT_EQ(received.size(), 8u);
    });
}

TEST(kafka, unsubscribing_one_channel_keeps_the_other_flowing) {
    const auto url = kafka_test_url();
    run_async_test([&](asio::io_context& io) -> asio::awaitable<void> {
        broadcast bc(io, url);
        co_await bc.async_connect(use_awaitable);
        const auto kept = unique_name("kept");
        const auto dropped = unique_name("dropped");
        auto keep = co_await bc.async_subscribe(kept, use_awaitable);
        {
            auto drop = co_await bc.async_subscribe(dropped, use_awaitable);
            co_await bc.async_publish(dropped, "once", use_awaitable);
            EXPECT_EQ((co_await receive(drop)).message(), "once");
        }  // unsubscribes `dropped` only
        co_await eventually([&] { return bc.stats().active_channels == 1; });
        co_await publish_numbered(bc, kept, 100);
        co_await receive_numbered(keep, 100);
    });
}

TEST(kafka, every_broadcast_receives_every_message) {
    const auto url = kafka_test_url();
    run_async_test([&](asio::io_context& io) -> asio::awaitable<void> {
        broadcast first(io, url);
        broadcast second(io, url);
        co_await first.async_connect(use_awaitable);
        co_await second.async_connect(use_awaitable);
        const auto channel = unique_name("everyone");
        auto a = co_await first.async_subscribe(channel, subscribe_options(1000), use_awaitable);
        auto b = co_await second.async_subscribe(channel, subscribe_options(1000), use_awaitable);
        co_await publish_numbered(first, channel, 300);
        co_await receive_numbered(a, 300);
        co_await receive_numbered(b, 300);
    });
}

TEST(kafka, delivery_resumes_after_the_brokers_come_back) {
    kafka_mock cluster;
    run_async_test([&](asio::io_context& io) -> asio::awaitable<void> {
        broadcast bc(io, cluster.url() +
                             "?reconnect_min_ms=20&reconnect_max_ms=200&"
                             "publish_timeout_ms=20000");
        state_log log;
        log.attach(bc);
        co_await bc.async_connect(use_awaitable);
        const auto channel = unique_name("outage");
        auto sub = co_await bc.async_subscribe(channel, use_awaitable);
        co_await bc.async_publish(channel, "before", use_awaitable);
        EXPECT_EQ((co_await receive(sub)).message(), "before");

        cluster.broker_down();
        co_await eventually([&] { return log.saw(connection_state::reconnecting); }, 20s);
        // Published during the outage: Kafka keeps it, so it arrives once a broker is
        // back (within the publish timeout).
        std::optional<error_code> during;
        bc.async_publish(channel, "during", [&](error_code ec) { during = ec; });
        cluster.broker_up();
        co_await eventually([&] { return log.states.back() == connection_state::connected; }, 20s);
        co_await eventually([&] { return during.has_value(); }, 20s);
        EXPECT_FALSE(*during) << during->message();
        EXPECT_EQ((co_await receive(sub, 20s)).message(), "during");
        co_await bc.async_publish(channel, "after", use_awaitable);
        EXPECT_EQ((co_await receive(sub, 20s)).message(), "after");
    });
}

// Every broker down: the app is told the cluster is unavailable, and a publish made
// then fails with that once its timeout passed, not with a timeout of a healthy cluster.
TEST(kafka, a_publish_while_every_broker_is_down_fails_with_cluster_unavailable) {
    kafka_mock cluster;
    run_async_test([&](asio::io_context& io) -> asio::awaitable<void> {
        broadcast bc(
            io, cluster.url() + "?reconnect_min_ms=20&reconnect_max_ms=200&publish_timeout_ms=300");
        std::optional<error_code> reason;  // of the first change to reconnecting
        bc.on_state_change([&](connection_state s, error_code ec) {
            if (s == connection_state::reconnecting && !reason) {
                reason = ec;
            }
        });
        co_await bc.async_connect(use_awaitable);
        cluster.broker_down();
        co_await eventually([&] { return reason.has_value(); }, 20s);
        EXPECT_EQ(*reason, error::cluster_unavailable) << reason->message();
        auto [ec] = co_await bc.async_publish(unique_name("down"), "nowhere",
                                              asio::as_tuple(use_awaitable));
        EXPECT_EQ(ec, error::cluster_unavailable) << ec.message();
        EXPECT_EQ(ec, condition::transient);
    });
}

TEST(kafka, works_when_one_bootstrap_broker_is_unreachable) {
    kafka_mock cluster(1);
    const auto dead = "127.0.0.1:" + std::to_string(free_port());
    run_async_test([&](asio::io_context& io) -> asio::awaitable<void> {
        broadcast bc(io, "kafka://" + dead + "," + cluster.bootstrap());
        co_await bc.async_connect(use_awaitable);
        const auto channel = unique_name("bootstrap");
        auto sub = co_await bc.async_subscribe(channel, use_awaitable);
        co_await bc.async_publish(channel, "reached", use_awaitable);
        EXPECT_EQ((co_await receive(sub)).message(), "reached");
    });
}

TEST(kafka, an_unreachable_cluster_fails_connect_after_the_timeout) {
    const auto dead = "127.0.0.1:" + std::to_string(free_port());
    run_async_test([&](asio::io_context& io) -> asio::awaitable<void> {
        broadcast bc(io, "kafka://" + dead + "?connect_timeout_ms=500");
        const auto started = std::chrono::steady_clock::now();
        auto [ec] = co_await bc.async_connect(asio::as_tuple(use_awaitable));
        EXPECT_EQ(ec, error::unreachable) << ec.message();
        EXPECT_EQ(ec, condition::transient);
        EXPECT_GE(std::chrono::steady_clock::now() - started, 450ms);
        EXPECT_EQ(bc.state(), connection_state::disconnected);
    });
}

TEST(kafka, topic_prefix_names_the_topic) {
    const auto url = kafka_test_url();
    run_async_test([&](asio::io_context& io) -> asio::awaitable<void> {
        broadcast prefixed(io, url + "?topic_prefix=app1.");
        broadcast plain(io, url);
        co_await prefixed.async_connect(use_awaitable);
        co_await plain.async_connect(use_awaitable);
        const auto channel = unique_name("prefixed");
        auto by_topic = co_await plain.async_subscribe("app1." + channel, use_awaitable);
        auto by_channel = co_await prefixed.async_subscribe(channel, use_awaitable);
        co_await prefixed.async_publish(channel, "hello", use_awaitable);
        const auto ev = co_await receive(by_channel);
        EXPECT_EQ(ev.channel(), channel);
        EXPECT_EQ(ev.message(), "hello");
        EXPECT_EQ((co_await receive(by_topic)).channel(), "app1." + channel);
    });
}

TEST(kafka, refuses_channels_and_payloads_kafka_cannot_carry) {
    const auto url = kafka_test_url();
    run_async_test([&](asio::io_context& io) -> asio::awaitable<void> {
        broadcast bc(io, url);
        co_await bc.async_connect(use_awaitable);
        const std::vector<std::string> bad{"",   "Chat Room",          "a/b", "ÜNICODE", ".",
                                           "..", std::string(250, 'x')};
        for (const auto& name : bad) {
            auto [ec, sub] = co_await bc.async_subscribe(name, asio::as_tuple(use_awaitable));
            EXPECT_EQ(ec, error::invalid_channel) << name;
            auto [publish_ec] = co_await bc.async_publish(name, "x", asio::as_tuple(use_awaitable));
            EXPECT_EQ(publish_ec, error::invalid_channel) << name;
        }
        auto [ec] = co_await bc.async_publish(unique_name("big"), std::string(3 << 20, 'x'),
                                              asio::as_tuple(use_awaitable));
        EXPECT_EQ(ec, error::payload_too_large) << ec.message();
    });
}

TEST(kafka, rejects_bad_urls_naming_the_problem_without_the_password) {
    asio::io_context io;
    for (const auto* url :
         {"kafka://u:pw@", "kafka://u:pw@host:9092,", "kafka://u:pw@host:99999",
          "kafka://u:pw@host:abc", "kafka://u:pw@host/path", "kafka://u:pw@host?bogus=1",
          "kafka://u:pw@host?kafka.no.such.setting=1", "kafka://u:pw@host?topic_prefix=a%20b",
          "kafka://u:pw@host?kafka.linger.ms=abc", "kafka://host?kafka.sasl.password=pw&bogus=1"}) {
        try {
            broadcast bc(io, url);
            ADD_FAILURE() << "accepted " << url;
        } catch (const boost::system::system_error& e) {
            EXPECT_EQ(e.code(), error::invalid_url) << url;
            EXPECT_EQ(std::string(e.what()).find("pw"), std::string::npos) << e.what();
        }
    }
    // Broker lists, IPv6, default ports and librdkafka settings are accepted.
    for (const auto* url : {"kafka://a:1,b:2,c", "kafka://[::1]:9092,host", "kafka://host/",
                            "kafka://u:pw@host?kafka.linger.ms=5&producer.acks=1"}) {
        EXPECT_NO_THROW(broadcast(io, url)) << url;
    }
}

}  // namespace
}  // namespace broadcaster::test
