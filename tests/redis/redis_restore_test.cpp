// The Redis backend restoring its subscriptions after a reconnect, against a real
// redis-server: a restore that Redis never answers must not stall the client for good,
// and no publish may overtake it.

#include "own_redis.hpp"
#include "swallow_proxy.hpp"
#include "test_servers.hpp"
#include "test_support.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/steady_timer.hpp>

namespace broadcaster::test {
namespace {

using asio::use_awaitable;
using boost::system::error_code;
using namespace asio::experimental::awaitable_operators;

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

// A publish made once both connections are back, while the SUBSCRIBE that restores
// the channel is not confirmed yet, waits for that confirmation: written at once, Redis
// would answer it with no subscriber there and drop it, the publish succeeding. The
// proxy swallows the restoring SUBSCRIBE, so that window stays open until the restore
// times out and the next connection restores the channel.
TEST(redis_restore, a_publish_made_while_the_restore_is_pending_waits_for_it) {
    own_redis redis;
    run_async_test(
        [&](asio::io_context& io) -> asio::awaitable<void> {
            swallow_proxy proxy(io, redis.port);
            broadcast bc(io, "redis://127.0.0.1:" + std::to_string(proxy.port()) +
                                 "?reconnect_min_ms=20&reconnect_max_ms=100&"
                                 "publish_timeout_ms=10000&connect_timeout_ms=500");
            state_log log;
            log.attach(bc);
            co_await bc.async_connect(use_awaitable);
            const auto channel = unique_name("restore-window");
            auto sub = co_await bc.async_subscribe(channel, use_awaitable);

            proxy.swallow_subscribes(true);
            BROADCASTER_REQUIRE(redis.cli("CLIENT KILL TYPE pubsub") == 0);
            // The restore was written: the connections are up, the restore is pending.
            co_await eventually([&] { return proxy.swallowed() > 0; }, 10s);
            int calls = 0;
            error_code result;
            bc.async_publish(channel, "in the window", [&](error_code ec) {
                ++calls;
                result = ec;
            });
            proxy.swallow_subscribes(false);

            co_await eventually([&] { return calls > 0; }, 10s);
            EXPECT_FALSE(result) << result.message();
            EXPECT_EQ(log.states.back(), connection_state::connected)
                << "answered before the restore was confirmed";
            co_await bc.async_publish(channel, "after", use_awaitable);
            std::vector<std::string> received;
            while (received.empty() || received.back() != "after") {
                received.emplace_back((co_await receive(sub)).message());
            }
            EXPECT_EQ(received, (std::vector<std::string>{"in the window", "after"}));
            EXPECT_EQ(bc.stats().reconnects, 1u);
        },
        30s);
}

// A channel Redis refuses when the client subscribes it again after a reconnect
// (-NOPERM: an ACL change took the user's access to it away) ends its subscribers with
// subscription_refused; the other channels go on. (Its subscribers used to wait for
// good, with nothing to tell them.)
TEST(redis_restore, a_channel_refused_on_restore_ends_its_subscribers) {
    own_redis redis;
    ASSERT_EQ(redis.cli("ACL SETUSER app on '>Zq1secret' '~*' '&*' '+@all'"), 0);
    run_async_test([&](asio::io_context& io) -> asio::awaitable<void> {
        broadcast bc(io, redis.url("app:Zq1secret@", "?reconnect_min_ms=20&reconnect_max_ms=100"));
        state_log log;
        log.attach(bc);
        co_await bc.async_connect(use_awaitable);
        const auto kept = unique_name("kept");
        const auto refused = unique_name("refused");
        auto kept_sub = co_await bc.async_subscribe(kept, use_awaitable);
        auto refused_sub = co_await bc.async_subscribe(refused, use_awaitable);

        BROADCASTER_REQUIRE(redis.cli("ACL SETUSER app resetchannels '&kept-*'") == 0);
        redis.cli("CLIENT KILL TYPE pubsub");  // Redis may have closed it already
        asio::steady_timer bound(io, 10s);
        auto ended = co_await (refused_sub.async_receive(asio::as_tuple(use_awaitable)) ||
                               bound.async_wait(use_awaitable));
        BROADCASTER_REQUIRE(ended.index() == 0);  // not the 10 s bound
        const auto ec = std::get<0>(std::get<0>(ended));
        EXPECT_EQ(ec, error::subscription_refused) << ec.message();
        EXPECT_EQ(ec, condition::subscription_ended);
        EXPECT_EQ(ec, condition::refused_by_broker);

        co_await eventually([&] { return log.states.back() == connection_state::connected; }, 10s);
        co_await bc.async_publish(kept, "still here", use_awaitable);
        EXPECT_EQ((co_await receive(kept_sub)).message(), "still here");
        co_await eventually([&] { return bc.stats().active_channels == 1; });
    });
}

}  // namespace
}  // namespace broadcaster::test
