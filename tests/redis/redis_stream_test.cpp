// redis-stream:// against its own redis-server: recovery after the server is killed
// and restarted (appendonly) and after CLIENT KILL while a publisher keeps publishing,
// a trimmed gap during an outage, and the URL options.

#include "own_redis.hpp"
#include "test_support.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/detached.hpp>

#include <set>

namespace broadcaster::test {
namespace {

using asio::use_awaitable;
using boost::system::error_code;
using namespace asio::experimental::awaitable_operators;

std::string stream_url(const own_redis& redis, const std::string& userinfo = "",
                       const std::string& options = "") {
    return "redis-stream://" + userinfo + "127.0.0.1:" + std::to_string(redis.port) +
           fast_reconnect + options;
}

// Publishes 0, 1, 2, ... until told to stop, through outages: a publish that fails is
// noted (it may or may not have been stored) and the next number follows.
struct numbered_publisher {
    int next = 0;
    std::set<int> failed;
    bool stop = false;
    bool done = false;

    asio::awaitable<void> run(broadcast& bc, std::string channel) {
        while (!stop) {
            const int n = next++;
            auto [ec] = co_await bc.async_publish(channel, std::to_string(n),
                                                  asio::as_tuple(use_awaitable));
            if (ec) {
                failed.insert(n);
            }
        }
        done = true;
    }
};

// Receives until `last` arrived: each number once, in order, every one that did not
// fail to publish.
asio::awaitable<void> expect_all_once_in_order(subscriber& sub, const numbered_publisher& pub) {
    int expected = 0;
    const int last = pub.next - 1;
    while (expected <= last) {
        const auto ev = co_await receive(sub, 20s);
        const int n = std::stoi(std::string(ev.message()));
        BROADCASTER_REQUIRE(n >= expected);  // in order, no duplicate
        for (int missing = expected; missing < n; ++missing) {
            if (pub.failed.count(missing) == 0) {
                throw std::runtime_error("message " + std::to_string(missing) +
                                         " was acknowledged but never received");
            }
        }
        expected = n + 1;
    }
    EXPECT_FALSE(sub.try_receive().has_value());
}

// One outage per round, while a publisher on the same broadcast keeps going.
asio::awaitable<void> survive_outages(own_redis& redis, std::function<void()> outage) {
    broadcast bc(co_await asio::this_coro::executor, stream_url(redis));
    state_log log;
    log.attach(bc);
    co_await bc.async_connect(use_awaitable);
    const auto channel = unique_name("outage");
    auto sub = co_await bc.async_subscribe(channel, subscribe_options{100'000}, use_awaitable);
    auto pub = std::make_shared<numbered_publisher>();
    asio::co_spawn(co_await asio::this_coro::executor, pub->run(bc, channel), asio::detached);
    for (int round = 0; round < 3; ++round) {
        const int before = pub->next;
        co_await eventually([&] { return pub->next >= before + 200; }, 20s);
        const auto seen = log.states.size();
        outage();
        co_await eventually(
            [&] {
                return std::count(log.states.begin() + static_cast<long>(seen), log.states.end(),
                                  connection_state::connected) > 0;
            },
            20s);
    }
    const int after = pub->next;
    co_await eventually([&] { return pub->next >= after + 200; }, 20s);
    pub->stop = true;
    co_await eventually([&] { return pub->done; }, 20s);
    co_await expect_all_once_in_order(sub, *pub);
    EXPECT_LT(pub->failed.size(), static_cast<std::size_t>(pub->next / 2));
}

TEST(redis_stream, a_killed_and_restarted_redis_loses_nothing_it_acknowledged) {
    own_redis redis({"--appendonly", "yes", "--appendfsync", "always"});
    run_async_test(
        [&](asio::io_context&) -> asio::awaitable<void> {
            co_await survive_outages(redis, [&] { redis.server->crash_and_restart(); });
        },
        60s);
}

// After a restart Redis accepts connections while it loads its dataset, answering
// AUTH and CLIENT but -LOADING to XADD and XREAD. A connection made then is not
// ready: publishes wait for one that is, and none fails.
TEST(redis_stream, publishes_wait_while_a_restarted_redis_loads_its_dataset) {
    // 10000 writes in the append-only file, each loaded at least 100 us late: the load
    // takes seconds, and Redis answers clients only every 1024 of them.
    own_redis redis({"--appendonly", "yes", "--appendfsync", "always", "--key-load-delay", "100"});
    BROADCASTER_REQUIRE(redis.cli("eval \"for i=1,10000 do redis.call('set','k'..i,i) end\" 0") ==
                        0);
    run_async_test([&](asio::io_context& io) -> asio::awaitable<void> {
        broadcast bc(io, stream_url(redis, "", "&publish_timeout_ms=20000"));
        state_log log;
        log.attach(bc);
        co_await bc.async_connect(use_awaitable);
        const auto channel = unique_name("loading");
        auto sub = co_await bc.async_subscribe(channel, use_awaitable);
        redis.server->stop(SIGKILL);
        co_await eventually([&] { return log.saw(connection_state::reconnecting); });
        redis.server->start();
        for (int i = 0; i < 5; ++i) {
            auto [ec] = co_await bc.async_publish(channel, std::to_string(i),
                                                  asio::as_tuple(use_awaitable));
            EXPECT_FALSE(ec) << i << ": " << ec.message();
        }
        for (int i = 0; i < 5; ++i) {
            EXPECT_EQ((co_await receive(sub, 20s)).message(), std::to_string(i));
        }
    });
}

// The loading check (a PING in the handshake) must not lock out a user whose ACL
// grants only what the backend uses.
TEST(redis_stream, a_user_without_ping_connects) {
    own_redis redis;
    BROADCASTER_REQUIRE(redis.cli("ACL SETUSER chat on '>pw' '~*' '+@all' '-ping'") == 0);
    run_async_test([&](asio::io_context& io) -> asio::awaitable<void> {
        broadcast bc(io, stream_url(redis, "chat:pw@"));
        co_await bc.async_connect(use_awaitable);
        const auto channel = unique_name("noping");
        auto sub = co_await bc.async_subscribe(channel, use_awaitable);
        co_await bc.async_publish(channel, "x", use_awaitable);
        EXPECT_EQ((co_await receive(sub)).message(), "x");
    });
}

// An ACL change that takes some streams away (-NOPERM on the shared XREAD, which names
// none) ends those streams' subscribers with subscription_refused; the others go on,
// on the same connection. (The backend used to reconnect about 20 times a second, and
// the refused subscribers waited in silence.)
TEST(redis_stream, streams_an_acl_change_refuses_end_their_subscribers) {
    own_redis redis;
    BROADCASTER_REQUIRE(redis.cli("ACL SETUSER app on '>pw' '~*' '+@all'") == 0);
    run_async_test([&](asio::io_context& io) -> asio::awaitable<void> {
        broadcast bc(io, stream_url(redis, "app:pw@"));
        state_log log;
        log.attach(bc);
        co_await bc.async_connect(use_awaitable);
        const auto kept = unique_name("kept");
        const auto refused = unique_name("refused");
        auto kept_sub = co_await bc.async_subscribe(kept, use_awaitable);
        auto refused_sub = co_await bc.async_subscribe(refused, use_awaitable);
        BROADCASTER_REQUIRE(redis.cli("ACL SETUSER app resetkeys '~kept-*'") == 0);
        // Ends the blocked XREAD (it was allowed when it started); the next is refused.
        co_await bc.async_publish(kept, "before", use_awaitable);
        EXPECT_EQ((co_await receive(kept_sub)).message(), "before");
        asio::steady_timer bound(io, 10s);
        auto ended = co_await (refused_sub.async_receive(asio::as_tuple(use_awaitable)) ||
                               bound.async_wait(use_awaitable));
        BROADCASTER_REQUIRE(ended.index() == 0);  // not the 10 s bound
        EXPECT_EQ(std::get<0>(std::get<0>(ended)), error::subscription_refused);
        EXPECT_NE(refused_sub.error_message().find("XREAD of the stream refused: NOPERM"),
                  std::string::npos)
            << refused_sub.error_message();
        co_await bc.async_publish(kept, "after", use_awaitable);
        EXPECT_EQ((co_await receive(kept_sub)).message(), "after");
        EXPECT_FALSE(log.saw(connection_state::reconnecting));
        EXPECT_EQ(bc.stats().reconnects, 0u);
        co_await eventually([&] { return bc.stats().active_channels == 1; });
    });
}

// XREAD itself taken away: every stream is refused, and nothing reconnects in a loop.
TEST(redis_stream, a_user_who_may_no_longer_read_ends_every_subscriber) {
    own_redis redis;
    BROADCASTER_REQUIRE(redis.cli("ACL SETUSER app on '>pw' '~*' '+@all'") == 0);
    run_async_test([&](asio::io_context& io) -> asio::awaitable<void> {
        broadcast bc(io, stream_url(redis, "app:pw@"));
        co_await bc.async_connect(use_awaitable);
        const auto one = unique_name("one");
        const auto two = unique_name("two");
        auto one_sub = co_await bc.async_subscribe(one, use_awaitable);
        auto two_sub = co_await bc.async_subscribe(two, use_awaitable);
        BROADCASTER_REQUIRE(redis.cli("ACL SETUSER app -xread") == 0);
        // Ends the blocked XREAD: Redis checks the user's rights again before serving it.
        co_await bc.async_publish(one, "unread", use_awaitable);
        for (auto* sub : {&one_sub, &two_sub}) {
            auto [ec, ev] = co_await sub->async_receive(asio::as_tuple(use_awaitable));
            EXPECT_EQ(ec, error::subscription_refused);
        }
        EXPECT_EQ(bc.stats().reconnects, 0u);
    });
}

// Runs an ACL command, failing the test unless Redis answered OK (redis-cli's exit
// status does not tell).
void acl(const own_redis& redis, const std::string& args) {
    const auto reply = redis.cli_output(args);
    if (reply.rfind("OK", 0) != 0) {
        throw std::runtime_error(args + ": " + reply);
    }
}

// Receives until `sub` ends, bounded: a subscriber that waits in silence fails the test.
asio::awaitable<error_code> ended(subscriber& sub) {
    asio::steady_timer bound(co_await asio::this_coro::executor, 10s);
    for (;;) {
        auto result = co_await (sub.async_receive(asio::as_tuple(use_awaitable)) ||
                                bound.async_wait(use_awaitable));
        BROADCASTER_REQUIRE(result.index() == 0);  // not the 10 s bound
        if (const auto ec = std::get<0>(std::get<0>(result))) {
            co_return ec;
        }
    }
}

// `sub` ended naming what Redis refused, and no password.
void expect_refused(const subscriber& sub, const std::string& what) {
    const auto message = sub.error_message();
    EXPECT_NE(message.find(what), std::string::npos) << message;
    EXPECT_EQ(message.find("s3cret"), std::string::npos) << message;
}

// Subscribes; the result's error, the handle if none.
asio::awaitable<std::pair<error_code, subscriber>> try_subscribe(broadcast& bc,
                                                                 std::string channel) {
    auto [ec, sub] = co_await bc.async_subscribe(channel, asio::as_tuple(use_awaitable));
    co_return std::make_pair(ec, std::move(sub));
}

// The user the ACL tests restrict, and how a broadcast logs in as it.
void add_app_user(const own_redis& redis) {
    acl(redis, "ACL SETUSER app on '>s3cret-pw' '~*' '+@all'");
}
constexpr const char* app_login = "app:s3cret-pw@";

// Both subscribers end with subscription_refused, naming `what` Redis refused.
asio::awaitable<void> expect_both_refused(subscriber& one, subscriber& two, std::string what) {
    for (auto* sub : {&one, &two}) {
        EXPECT_EQ(co_await ended(*sub), error::subscription_refused);
        expect_refused(*sub, what);
    }
}

// A new subscribe fails while the ACL refuses what reading needs, and works once
// `allow` (an ACL command) lifts the refusal.
asio::awaitable<void> expect_subscribe_refused_until(broadcast& bc, const own_redis& redis,
                                                     std::string allow) {
    auto [refused, none] = co_await try_subscribe(bc, unique_name("later"));
    EXPECT_EQ(refused, error::broker_error);
    acl(redis, allow);
    const auto later = unique_name("later");
    auto later_sub = co_await bc.async_subscribe(later, use_awaitable);
    co_await bc.async_publish(later, "x", use_awaitable);
    EXPECT_EQ((co_await receive(later_sub)).message(), "x");
}

// An ACL change that refuses MULTI, which a catch-up needs (here after a full read),
// refuses no stream: each is still read alone. No stream is to blame, and a reconnect
// would meet the same refusal: every subscriber ends with subscription_refused and the
// connection stays. (The backend used to reconnect about 12 times a second, forever,
// while every subscriber waited in silence.) A later subscribe is checked for what
// reading needs: refused while the ACL refuses MULTI, fine once it allows it again.
TEST(redis_stream, an_acl_that_refuses_multi_ends_every_subscriber_without_reconnecting) {
    own_redis redis;
    add_app_user(redis);
    run_async_test([&](asio::io_context& io) -> asio::awaitable<void> {
        broadcast bc(io, stream_url(redis, app_login, "&read_count=2"));
        state_log log;
        log.attach(bc);
        co_await bc.async_connect(use_awaitable);
        const auto one = unique_name("one");
        const auto two = unique_name("two");
        auto one_sub = co_await bc.async_subscribe(one, use_awaitable);
        auto two_sub = co_await bc.async_subscribe(two, use_awaitable);
        const auto connections = redis.connection_ids("app");
        BROADCASTER_REQUIRE(connections.size() == 2);
        acl(redis, "ACL SETUSER app -multi");
        // Two entries at once (a script): a full read, so a catch-up follows.
        BROADCASTER_REQUIRE(redis.cli("EVAL \"redis.call('XADD', KEYS[1], '*', 'm', 'a') "
                                      "redis.call('XADD', KEYS[1], '*', 'm', 'b')\" 1 " +
                                      one) == 0);
        EXPECT_EQ((co_await receive(one_sub)).message(), "a");
        EXPECT_EQ((co_await receive(one_sub)).message(), "b");
        co_await expect_both_refused(one_sub, two_sub, "MULTI refused: NOPERM");
        co_await eventually([&] { return bc.stats().active_channels == 0; });

        co_await expect_subscribe_refused_until(bc, redis, "ACL SETUSER app +multi");
        EXPECT_EQ(redis.connection_ids("app"), connections);
        EXPECT_FALSE(log.saw(connection_state::reconnecting));
        EXPECT_EQ(bc.stats().reconnects, 0u);
    });
}

// The same with XINFO refused, met by the catch-up after a reconnect: one reconnect, then
// the subscribers end, and none follows.
TEST(redis_stream, an_acl_that_refuses_xinfo_ends_every_subscriber_after_one_reconnect) {
    own_redis redis;
    add_app_user(redis);
    run_async_test([&](asio::io_context& io) -> asio::awaitable<void> {
        broadcast bc(io, stream_url(redis, app_login));
        co_await bc.async_connect(use_awaitable);
        const auto one = unique_name("one");
        const auto two = unique_name("two");
        auto one_sub = co_await bc.async_subscribe(one, use_awaitable);
        auto two_sub = co_await bc.async_subscribe(two, use_awaitable);
        acl(redis, "ACL SETUSER app -xinfo");
        BROADCASTER_REQUIRE(redis.cli("CLIENT KILL USER app") == 0);
        co_await expect_both_refused(one_sub, two_sub, "XINFO STREAM refused: NOPERM");
        const auto connections = redis.connection_ids("app");
        EXPECT_EQ(connections.size(), 2u);

        co_await expect_subscribe_refused_until(bc, redis, "ACL SETUSER app +xinfo");
        EXPECT_EQ(redis.connection_ids("app"), connections);
        EXPECT_EQ(bc.stats().reconnects, 1u);
    });
}

// ACL selectors (Redis 7) that allow XREAD of each stream alone but not of several
// together: no stream is refused alone, so every subscriber ends, without a reconnect.
// A later subscribe succeeds when its stream may be read with the others, and fails at
// once when not.
TEST(redis_stream, an_acl_that_refuses_streams_read_together_ends_every_subscriber) {
    own_redis redis;
    add_app_user(redis);
    run_async_test([&](asio::io_context& io) -> asio::awaitable<void> {
        broadcast bc(io, stream_url(redis, app_login));
        state_log log;
        log.attach(bc);
        co_await bc.async_connect(use_awaitable);
        const auto one = unique_name("one");
        const auto two = unique_name("two");
        auto one_sub = co_await bc.async_subscribe(one, use_awaitable);
        auto two_sub = co_await bc.async_subscribe(two, use_awaitable);
        const auto connections = redis.connection_ids("app");
        acl(redis, "ACL SETUSER app -xread '(~" + one + " +xread)' '(~" + two + " +xread)'");
        // Ends the blocked XREAD; it, or the next, is refused.
        co_await bc.async_publish(one, "unread", use_awaitable);
        co_await expect_both_refused(one_sub, two_sub,
                                     "XREAD of 2 streams together refused: NOPERM");

        auto again = co_await bc.async_subscribe(one, use_awaitable);
        auto [refused, none] = co_await try_subscribe(bc, two);
        EXPECT_EQ(refused, error::broker_error);
        co_await bc.async_publish(one, "x", use_awaitable);
        EXPECT_EQ((co_await receive(again)).message(), "x");
        acl(redis, "ACL SETUSER app +xread");
        auto two_again = co_await bc.async_subscribe(two, use_awaitable);
        co_await bc.async_publish(two, "y", use_awaitable);
        EXPECT_EQ((co_await receive(two_again)).message(), "y");
        EXPECT_EQ(redis.connection_ids("app"), connections);
        EXPECT_FALSE(log.saw(connection_state::reconnecting));
        EXPECT_EQ(bc.stats().reconnects, 0u);
    });
}

// A stream made again since the position (a Redis restarted without its data, a DEL)
// has lost what followed it, though nothing was trimmed: a gap, not a silent skip.
TEST(redis_stream, since_a_position_of_a_stream_made_again_is_a_gap) {
    own_redis redis;
    run_async_test([&](asio::io_context& io) -> asio::awaitable<void> {
        broadcast bc(io, stream_url(redis));
        co_await bc.async_connect(use_awaitable);
        const auto channel = unique_name("again");
        auto sub = co_await bc.async_subscribe(channel, use_awaitable);
        co_await bc.async_publish(channel, "seen", use_awaitable);
        co_await bc.async_publish(channel, "never seen", use_awaitable);
        const auto seen = std::string((co_await receive(sub)).position());
        sub = subscriber();
        BROADCASTER_REQUIRE(redis.cli("DEL " + channel) == 0);
        co_await bc.async_publish(channel, "after", use_awaitable);
        subscribe_options options;
        options.since = seen;
        auto [ec, resumed] =
            co_await bc.async_subscribe(channel, options, asio::as_tuple(use_awaitable));
        EXPECT_EQ(ec, error::history_gap);
    });
}

TEST(redis_stream, client_kill_loses_nothing) {
    own_redis redis;
    run_async_test(
        [&](asio::io_context&) -> asio::awaitable<void> {
            co_await survive_outages(
                redis, [&] { BROADCASTER_REQUIRE(redis.cli("CLIENT KILL TYPE normal") == 0); });
        },
        60s);
}

// The subscriber's user is locked out while another instance publishes, so the outage
// lasts exactly as long as the test wants.
struct locked_out_subscriber {
    own_redis redis;
    locked_out_subscriber() {
        if (redis.cli("ACL SETUSER sub on '>pw' '~*' '&*' '+@all'") != 0) {
            throw std::runtime_error("ACL SETUSER failed");
        }
    }
    void lock() {
        BROADCASTER_REQUIRE(redis.cli("ACL SETUSER sub off") == 0);
        BROADCASTER_REQUIRE(redis.cli("CLIENT KILL USER sub") == 0);
    }
    void unlock() { BROADCASTER_REQUIRE(redis.cli("ACL SETUSER sub on") == 0); }
};

asio::awaitable<void> publish_range(broadcast& bc, const std::string& channel, int from, int to) {
    for (int i = from; i < to; ++i) {
        co_await bc.async_publish(channel, std::to_string(i), use_awaitable);
    }
}

TEST(redis_stream, resumes_after_an_outage_with_what_was_published_meanwhile) {
    locked_out_subscriber setup;
    run_async_test([&](asio::io_context& io) -> asio::awaitable<void> {
        broadcast reader(io, stream_url(setup.redis, "sub:pw@"));
        broadcast writer(io, stream_url(setup.redis));
        state_log log;
        log.attach(reader);
        co_await reader.async_connect(use_awaitable);
        co_await writer.async_connect(use_awaitable);
        const auto channel = unique_name("resume");
        auto sub = co_await reader.async_subscribe(channel, use_awaitable);
        co_await publish_range(writer, channel, 0, 2);
        EXPECT_EQ((co_await receive(sub)).message(), "0");
        EXPECT_EQ((co_await receive(sub)).message(), "1");
        setup.lock();
        co_await eventually([&] { return log.saw(connection_state::reconnecting); });
        co_await publish_range(writer, channel, 2, 7);
        setup.unlock();
        for (int i = 2; i < 7; ++i) {
            EXPECT_EQ((co_await receive(sub)).message(), std::to_string(i));
        }
        co_await writer.async_publish(channel, "7", use_awaitable);
        EXPECT_EQ((co_await receive(sub)).message(), "7");
        EXPECT_FALSE(sub.try_receive().has_value());
        EXPECT_EQ(reader.stats().reconnects, 1u);
    });
}

TEST(redis_stream, an_outage_longer_than_the_stream_ends_subscribers_with_a_gap) {
    locked_out_subscriber setup;
    run_async_test([&](asio::io_context& io) -> asio::awaitable<void> {
        broadcast reader(io, stream_url(setup.redis, "sub:pw@", "&maxlen=100"));
        broadcast writer(io, stream_url(setup.redis, "", "&maxlen=100"));
        state_log log;
        log.attach(reader);
        co_await reader.async_connect(use_awaitable);
        co_await writer.async_connect(use_awaitable);
        const auto channel = unique_name("gap");
        auto sub = co_await reader.async_subscribe(channel, use_awaitable);
        co_await publish_range(writer, channel, 0, 1);
        EXPECT_EQ((co_await receive(sub)).message(), "0");
        setup.lock();
        co_await eventually([&] { return log.saw(connection_state::reconnecting); });
        co_await publish_range(writer, channel, 1, 400);  // trims whole nodes of 100
        setup.unlock();
        auto [ec, ev] = co_await sub.async_receive(asio::as_tuple(use_awaitable));
        EXPECT_EQ(ec, error::history_gap);
        // A new subscriber takes what is kept, then live.
        subscribe_options options;
        options.last = 1;
        auto again = co_await reader.async_subscribe(channel, options, use_awaitable);
        EXPECT_EQ((co_await receive(again)).message(), "399");
    });
}

TEST(redis_stream, url_options_are_checked) {
    asio::io_context io;
    for (const auto* bad :
         {"redis-stream://127.0.0.1:1?maxlen=0", "redis-stream://127.0.0.1:1?block_ms=0",
          "redis-stream://127.0.0.1:1?maxlen=x", "redis-stream://127.0.0.1:1?nope=1"}) {
        try {
            broadcast bc(io, bad);
            ADD_FAILURE() << bad << " was accepted";
        } catch (const boost::system::system_error& e) {
            EXPECT_EQ(e.code(), error::invalid_url) << bad;
        }
    }
    broadcast ok(io,
                 "redis-stream://u:secret@127.0.0.1:1/"
                 "2?maxlen=5&block_ms=10&read_count=3&connect_timeout_ms=100");
    EXPECT_EQ(ok.url().find("secret"), std::string::npos);
}

}  // namespace
}  // namespace broadcaster::test
