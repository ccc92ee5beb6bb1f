// Per-operation cancellation of connect and subscribe. The order of events is fixed by
// the test: a scripted backend answers only when told, and a TCP server that accepts
// connections and never answers stands for a broker that hangs.

#include "scripted_backend.hpp"
#include "silent_server.hpp"
#include "test_servers.hpp"
#include "test_support.hpp"

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/executor_work_guard.hpp>

#include <optional>

namespace broadcaster::test {
namespace {

using asio::use_awaitable;
using boost::system::error_code;
using clock = std::chrono::steady_clock;
using namespace asio::experimental::awaitable_operators;

// Runs `io` until `condition` holds; fails the test after `limit`.
void run_until(asio::io_context& io, const std::function<bool()>& condition,
               std::chrono::seconds limit = 30s) {
    const auto until = clock::now() + limit;
    while (!condition() && clock::now() < until) {
        io.restart();
        io.run_one_for(10ms);
    }
    ASSERT_TRUE(condition()) << "not reached within " << limit.count() << " s";
}

struct scripted {
    asio::io_context io;
    std::shared_ptr<scripted_backend::shared> shared = std::make_shared<scripted_backend::shared>();
    broadcast bc{io.get_executor(), std::make_unique<scripted_backend>(shared)};

    scripted() {
        bc.async_connect([](error_code) {});
        io.run();
        io.restart();
    }
    void settle() {
        io.restart();
        io.poll();
    }
};

const asio::cancellation_type every_type[] = {asio::cancellation_type::terminal,
                                              asio::cancellation_type::partial,
                                              asio::cancellation_type::total};

TEST(cancellation, a_cancelled_subscribe_completes_at_once_and_leaves_nothing_subscribed) {
    for (const auto type : every_type) {
        scripted t;
        asio::cancellation_signal signal;
        std::optional<error_code> result;
        t.bc.async_subscribe(
            "a", asio::bind_cancellation_slot(signal.slot(),
                                              [&](error_code ec, subscriber) { result = ec; }));
        t.settle();
        ASSERT_EQ(t.shared->subscribes["a"], 1);
        ASSERT_FALSE(result) << "the scripted broker has not answered";

        signal.emit(type);
        t.settle();
        ASSERT_TRUE(result) << "the cancelled subscribe did not complete at once";
        EXPECT_EQ(*result, asio::error::operation_aborted);
        EXPECT_EQ(t.bc.stats().active_subscribers, 0u);

        // The broker's answer to the subscribe in flight comes after: the subscription
        // nobody wants any more is dropped.
        t.shared->backend->answer_held("a");
        t.settle();
        EXPECT_EQ(t.shared->unsubscribes["a"], 1);
        EXPECT_EQ(t.bc.stats().active_channels, 0u);

        // The channel can be subscribed again.
        std::optional<error_code> again;
        t.bc.async_subscribe("a", [&](error_code ec, subscriber) { again = ec; });
        t.settle();
        t.shared->backend->answer_held("a");
        t.settle();
        ASSERT_TRUE(again);
        EXPECT_FALSE(*again) << again->message();
        EXPECT_EQ(t.shared->subscribes["a"], 2);
        EXPECT_EQ(t.shared->backend->held_count(), 0u);
    }
}

TEST(cancellation, cancelling_one_subscribe_leaves_the_others_of_its_channel_alone) {
    scripted t;
    asio::cancellation_signal signal;
    std::optional<error_code> cancelled;
    std::optional<error_code> other;
    subscriber kept;
    t.bc.async_subscribe(
        "a", asio::bind_cancellation_slot(signal.slot(),
                                          [&](error_code ec, subscriber) { cancelled = ec; }));
    t.bc.async_subscribe("a", [&](error_code ec, subscriber sub) {
        other = ec;
        kept = std::move(sub);
    });
    t.settle();
    signal.emit(asio::cancellation_type::terminal);
    t.settle();
    ASSERT_TRUE(cancelled);
    EXPECT_EQ(*cancelled, asio::error::operation_aborted);
    EXPECT_FALSE(other) << "the other subscribe must still wait for the broker";

    t.shared->backend->answer_held("a");
    t.settle();
    ASSERT_TRUE(other);
    EXPECT_FALSE(*other) << other->message();
    EXPECT_TRUE(kept.is_open());
    EXPECT_EQ(t.shared->subscribes["a"], 1);
    EXPECT_EQ(t.shared->unsubscribes["a"], 0);
    EXPECT_EQ(t.bc.stats().active_subscribers, 1u);
}

TEST(cancellation, a_subscribe_with_a_timeout_loses_to_the_timer_and_leaves_nothing) {
    scripted t;
    std::optional<std::size_t> winner;
    asio::co_spawn(
        t.io,
        [&]() -> asio::awaitable<void> {
            asio::steady_timer timer(t.io, 20ms);
            auto result = co_await (t.bc.async_subscribe("a", use_awaitable) ||
                                    timer.async_wait(use_awaitable));
            winner = result.index();
        },
        asio::detached);
    run_until(t.io, [&] { return winner.has_value(); });
    EXPECT_EQ(*winner, 1u);
    EXPECT_EQ(t.bc.stats().active_subscribers, 0u);
    t.shared->backend->answer_held("a");
    t.settle();
    EXPECT_EQ(t.shared->unsubscribes["a"], 1);
    EXPECT_EQ(t.bc.stats().active_channels, 0u);
}

TEST(cancellation, a_callback_subscribe_is_cancelled_the_same_way) {
    scripted t;
    asio::cancellation_signal signal;
    std::optional<error_code> result;
    t.bc.async_subscribe_callback(
        "a", [](const event&) {},
        asio::bind_cancellation_slot(signal.slot(),
                                     [&](error_code ec, subscription) { result = ec; }));
    t.settle();
    signal.emit(asio::cancellation_type::total);
    t.settle();
    ASSERT_TRUE(result);
    EXPECT_EQ(*result, asio::error::operation_aborted);
    t.shared->backend->answer_held("a");
    t.settle();
    EXPECT_EQ(t.shared->unsubscribes["a"], 1);
    EXPECT_EQ(t.bc.stats().active_subscribers, 0u);
}

// The core hands the app's cancellation slot to the backend, which may drop a publish
// still queued (the memory backend publishes at once: nothing to cancel there).
TEST(cancellation, a_publish_hands_its_cancellation_slot_to_the_backend) {
    scripted t;
    t.shared->hold_publishes = true;
    asio::cancellation_signal signal;
    std::optional<error_code> result;
    t.bc.async_publish(
        "a", "queued",
        asio::bind_cancellation_slot(signal.slot(), [&](error_code ec) { result = ec; }));
    t.settle();
    ASSERT_FALSE(result) << "the scripted backend keeps it queued";
    signal.emit(asio::cancellation_type::terminal);
    t.settle();
    ASSERT_TRUE(result) << "the backend saw no cancellation slot";
    EXPECT_EQ(*result, asio::error::operation_aborted);
    EXPECT_EQ(t.bc.stats().published, 0u);
    EXPECT_EQ(t.shared->backend->held_count(), 0u);
}

TEST(cancellation, a_cancelled_connect_abandons_the_attempt_when_nobody_else_waits) {
    asio::io_context io;
    auto shared = std::make_shared<scripted_backend::shared>();
    shared->hold_connects = true;
    broadcast bc(io.get_executor(), std::make_unique<scripted_backend>(shared));
    asio::cancellation_signal first_signal;
    asio::cancellation_signal second_signal;
    std::optional<error_code> first;
    std::optional<error_code> second;
    bc.async_connect(
        asio::bind_cancellation_slot(first_signal.slot(), [&](error_code ec) { first = ec; }));
    bc.async_connect(
        asio::bind_cancellation_slot(second_signal.slot(), [&](error_code ec) { second = ec; }));
    io.poll();
    EXPECT_EQ(shared->connects, 1) << "two connects share one attempt";

    // One of two waiters goes: the attempt goes on for the other.
    first_signal.emit(asio::cancellation_type::terminal);
    io.restart();
    io.poll();
    ASSERT_TRUE(first);
    EXPECT_EQ(*first, asio::error::operation_aborted);
    EXPECT_FALSE(second);
    EXPECT_EQ(shared->disconnects, 0);
    EXPECT_EQ(bc.state(), connection_state::connecting);

    // The last one goes: the attempt is abandoned.
    second_signal.emit(asio::cancellation_type::terminal);
    io.restart();
    io.poll();
    ASSERT_TRUE(second);
    EXPECT_EQ(*second, asio::error::operation_aborted);
    EXPECT_EQ(shared->disconnects, 1);
    EXPECT_EQ(bc.state(), connection_state::disconnected);
    EXPECT_EQ(shared->backend->held_count(), 0u) << "the abandoned connect's handler is held";

    // A later connect starts afresh.
    std::optional<error_code> third;
    bc.async_connect([&](error_code ec) { third = ec; });
    io.restart();
    io.poll();
    EXPECT_EQ(shared->connects, 2);
    shared->backend->answer_held("");
    io.restart();
    io.poll();
    ASSERT_TRUE(third);
    EXPECT_FALSE(*third) << third->message();
    EXPECT_EQ(bc.state(), connection_state::connected);
}

// A connect to a broker that accepts the TCP connection and never answers: cancelled,
// it ends at once, long before the connect timeout, and closes its connection; the
// broadcast can connect again, and nothing is left open.
void expect_connect_cancelled_at_once(const std::function<std::string(unsigned short)>& url) {
    const auto sockets_before = open_sockets();
    {
        asio::io_context io;
        auto guard = asio::make_work_guard(io);
        silent_server server(io);
        broadcast_options options;
        options.connect_timeout = 20s;
        broadcast bc(io.get_executor(), url(server.port()), options);

        // As an app writes it: the connect against a timer.
        std::optional<std::size_t> winner;
        clock::duration elapsed{};
        asio::co_spawn(
            io,
            [&]() -> asio::awaitable<void> {
                asio::steady_timer timer(io, 200ms);
                const auto start = clock::now();
                auto result =
                    co_await (bc.async_connect(use_awaitable) || timer.async_wait(use_awaitable));
                elapsed = clock::now() - start;
                winner = result.index();
            },
            asio::detached);
        run_until(io, [&] { return winner.has_value(); });
        EXPECT_EQ(*winner, 1u) << "the connect won against a server that never answers";
        EXPECT_LT(elapsed, options.connect_timeout / 2);
        EXPECT_GE(server.accepted(), 1);
        run_until(io, [&] { return server.closed_by_client() == server.accepted(); });
        EXPECT_EQ(bc.state(), connection_state::disconnected);

        // With a signal of its own: operation_aborted, and a fresh connection each time.
        for (int round = 0; round < 2; ++round) {
            const int accepted = server.accepted();
            asio::cancellation_signal signal;
            std::optional<error_code> result;
            bc.async_connect(
                asio::bind_cancellation_slot(signal.slot(), [&](error_code ec) { result = ec; }));
            run_until(io, [&] { return server.accepted() > accepted; });
            const auto start = clock::now();
            signal.emit(asio::cancellation_type::terminal);
            run_until(io, [&] { return result.has_value(); });
            EXPECT_LT(clock::now() - start, options.connect_timeout / 2);
            EXPECT_EQ(*result, asio::error::operation_aborted);
            run_until(io, [&] { return server.closed_by_client() == server.accepted(); });
        }
    }
    EXPECT_EQ(open_sockets(), sockets_before) << "a socket leaked";
}

#ifdef BROADCASTER_WITH_REDIS
TEST(cancellation, a_redis_connect_to_a_server_that_never_answers_is_cancelled_at_once) {
    expect_connect_cancelled_at_once(
        [](unsigned short port) { return "redis://127.0.0.1:" + std::to_string(port); });
}
#endif

#ifdef BROADCASTER_WITH_POSTGRES
TEST(cancellation, a_postgres_connect_to_a_server_that_never_answers_is_cancelled_at_once) {
    expect_connect_cancelled_at_once([](unsigned short port) {
        return "postgres://postgres@127.0.0.1:" + std::to_string(port) + "/postgres";
    });
}
#endif

}  // namespace
}  // namespace broadcaster::test
