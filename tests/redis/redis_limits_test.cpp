// The Redis backend's bounds: the largest payload it accepts (so none is lost to
// Redis's pub/sub output-buffer limit) and the memory it keeps per channel.

#include "backends/redis/redis_client.hpp"
#include "backends/redis/redis_config.hpp"
#include "own_redis.hpp"
#include "test_servers.hpp"
#include "test_support.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/strand.hpp>

namespace broadcaster::test {
namespace {

using asio::use_awaitable;
using boost::system::error_code;

constexpr std::size_t mib = 1024 * 1024;

// A payload over the limit fails with payload_too_large and is never sent; one at
// the limit arrives. The default (8 MiB) and a limit set in the URL.
TEST(redis_limits, payloads_over_max_payload_bytes_are_refused_before_sending) {
    struct limit_case {
        std::string query;
        std::size_t limit;
    };
    const std::vector<limit_case> cases{{"", 8 * mib}, {"?max_payload_bytes=1000", 1000}};
    run_async_test([&](asio::io_context& io) -> asio::awaitable<void> {
        for (const auto& c : cases) {
            broadcast bc(io, redis_test_url() + c.query);
            co_await bc.async_connect(use_awaitable);
            const auto channel = unique_name("payload-limit");
            auto sub = co_await bc.async_subscribe(channel, use_awaitable);

            auto [too_large] = co_await bc.async_publish(channel, std::string(c.limit + 1, 'x'),
                                                         asio::as_tuple(use_awaitable));
            EXPECT_EQ(too_large, error::payload_too_large) << c.query;
            EXPECT_EQ(bc.stats().published, 0u) << c.query;

            co_await bc.async_publish(channel, std::string(c.limit, 'y'), use_awaitable);
            const auto ev = co_await receive(sub, 10s);
            EXPECT_EQ(ev.message().size(), c.limit) << c.query;
            EXPECT_EQ(ev.message().substr(0, 1), "y") << c.query;
        }
    });
}

TEST(redis_limits, rejects_a_max_payload_bytes_outside_what_redis_carries) {
    asio::io_context io;
    for (const auto* value : {"0", "abc", "-1", "536870913"}) {
        const std::string url = std::string("redis://:pw@host?max_payload_bytes=") + value;
        try {
            broadcast bc(io, url);
            ADD_FAILURE() << "accepted " << url;
        } catch (const boost::system::system_error& e) {
            EXPECT_EQ(e.code(), error::invalid_url) << url;
            EXPECT_NE(std::string(e.what()).find("max_payload_bytes"), std::string::npos)
                << e.what();
        }
    }
    broadcast largest(io, "redis://host?max_payload_bytes=536870912");
}

struct null_sink : backend_sink {
    int connected = 0;
    void deliver(event) override {}
    void state_changed(connection_state state, error_code) override {
        connected += state == connection_state::connected ? 1 : 0;
    }
};

// Subscribing to many channels and dropping them, with a restart in between (whose
// restore confirmations used to add entries too), leaves nothing behind per channel.
TEST(redis_limits, the_client_keeps_nothing_for_channels_no_longer_used) {
    own_redis redis;
    run_async_test([&](asio::io_context& io) -> asio::awaitable<void> {
        // The io_context runs on this thread only: calling the client from here is
        // calling it on its strand.
        const auto strand = asio::make_strand(io);
        backend_config config;
        config.url = redis.url("", fast_reconnect);
        config.redacted_url = config.url;
        const auto redis_config = detail::parse_redis_url(config);
        const auto sink = std::make_shared<null_sink>();
        const auto client =
            std::make_shared<detail::redis_client>(strand, redis_config, nullptr, sink);
        std::optional<error_code> connected;
        client->connect([&](error_code ec) { connected = ec; });
        co_await eventually([&] { return connected.has_value(); });
        BROADCASTER_REQUIRE(!*connected);

        constexpr int count = 2000;
        std::vector<std::string> names;
        for (int i = 0; i < count; ++i) {
            names.push_back(unique_name("entries"));
        }
        int done = 0;
        int failed = 0;
        const auto completion = [&](error_code ec) {
            ++done;
            failed += ec ? 1 : 0;
        };
        for (const auto& name : names) {
            client->subscribe(name, completion);
        }
        co_await eventually([&] { return done == count; });
        EXPECT_EQ(failed, 0);
        EXPECT_EQ(client->channel_entries(), std::size_t(count));  // the wanted channels

        redis.server->crash_and_restart();
        co_await eventually([&] { return sink->connected == 1; });  // every one restored

        done = 0;
        for (const auto& name : names) {
            client->unsubscribe(name, completion);
        }
        co_await eventually([&] { return done == count; });
        EXPECT_EQ(failed, 0);
        EXPECT_EQ(client->channel_entries(), 0u);
        client->stop();
    });
}

}  // namespace
}  // namespace broadcaster::test
