// The Redis backend restoring its subscriptions after a reconnect, against a real
// redis-server: a restore that Redis never answers must not stall the client for good.

#include "own_redis.hpp"
#include "swallow_proxy.hpp"
#include "test_servers.hpp"
#include "test_support.hpp"

#include <boost/asio/as_tuple.hpp>

namespace broadcaster::test {
namespace {

using asio::use_awaitable;
using boost::system::error_code;

// The subscribe connection is dropped (CLIENT KILL) and the SUBSCRIBE that restores the
// channel on the new one gets no reply, the connection staying up. A publish made
// meanwhile fails at its deadline; once SUBSCRIBEs get through again, the client must
// be connected again within the connect timeout and deliver. (It used to wait for that
// reply forever: every later publish failed with not_connected, for good.)
TEST(redis_restore, a_restore_never_confirmed_reconnects_within_the_connect_timeout) {
    own_redis redis;
    run_async_test(
        [&](asio::io_context& io) -> asio::awaitable<void> {
            swallow_proxy proxy(io, redis.port);
            broadcast bc(io, "redis://127.0.0.1:" + std::to_string(proxy.port()) +
                                 "?reconnect_min_ms=20&reconnect_max_ms=100&"
                                 "publish_timeout_ms=300&connect_timeout_ms=1000");
            state_log log;
            log.attach(bc);
            co_await bc.async_connect(use_awaitable);
            const auto channel = unique_name("restore-stall");
            auto sub = co_await bc.async_subscribe(channel, use_awaitable);

            proxy.swallow_subscribes(true);
            BROADCASTER_REQUIRE(redis.cli("CLIENT KILL TYPE pubsub") == 0);
            co_await eventually([&] { return log.saw(connection_state::reconnecting); });
            // Held until the restore is confirmed, which cannot happen while SUBSCRIBEs
            // are swallowed: it fails at its deadline, once.
            int calls = 0;
            error_code held;
            bc.async_publish(channel, "held", [&](error_code ec) {
                ++calls;
                held = ec;
            });
            co_await eventually([&] { return calls > 0; });
            EXPECT_EQ(held, error::reconnect_timeout) << held.message();

            proxy.swallow_subscribes(false);
            co_await eventually([&] { return log.states.back() == connection_state::connected; },
                                10s);
            co_await bc.async_publish(channel, "after", use_awaitable);
            while ((co_await receive(sub)).message() != "after") {
            }
            EXPECT_EQ(calls, 1);
        },
        30s);
}

}  // namespace
}  // namespace broadcaster::test
