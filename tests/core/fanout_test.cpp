// The core's own behaviour, on top of any backend: reference-counted broker
// subscriptions, callback subscriptions, completion tokens, state and stats.

#include "counting_backend.hpp"
#include "test_support.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_future.hpp>

namespace broadcaster::test {
namespace {

using asio::use_awaitable;
using boost::system::error_code;

struct counted {
    std::shared_ptr<backend_calls> calls = std::make_shared<backend_calls>();
    broadcast make(asio::io_context& io) {
        return broadcast(io.get_executor(), std::make_unique<counting_backend>(calls));
    }
};

TEST(fanout, one_broker_subscription_per_channel_however_many_subscribers) {
    counted backend;
    run_async_test([&](asio::io_context& io) -> asio::awaitable<void> {
        auto bc = backend.make(io);
        co_await bc.async_connect(use_awaitable);
        std::vector<subscriber> subs;
        for (int i = 0; i < 100; ++i) {
            subs.push_back(co_await bc.async_subscribe("room", use_awaitable));
        }
        EXPECT_EQ(backend.calls->subscribes_of("room"), 1);
        subs.resize(1);
        co_await eventually([&] { return bc.stats().active_subscribers == 1; });
        EXPECT_EQ(backend.calls->unsubscribes_of("room"), 0);
        subs.clear();
        co_await eventually([&] { return backend.calls->unsubscribes_of("room") == 1; });
        co_await eventually([&] { return bc.stats().active_channels == 0; });
    });
}

TEST(fanout, concurrent_subscribes_to_a_new_channel_share_one_broker_subscription) {
    counted backend;
    run_async_test([&](asio::io_context& io) -> asio::awaitable<void> {
        auto bc = backend.make(io);
        co_await bc.async_connect(use_awaitable);
        // Start all before any completes: they must wait on the same confirmation.
        int done = 0;
        std::vector<subscriber> subs;
        for (int i = 0; i < 10; ++i) {
            bc.async_subscribe("new", [&](error_code ec, subscriber sub) {
                EXPECT_FALSE(ec);
                subs.push_back(std::move(sub));
                ++done;
            });
        }
        co_await eventually([&] { return done == 10; });
        EXPECT_EQ(backend.calls->subscribes_of("new"), 1);
        co_await bc.async_publish("new", "x", use_awaitable);
        for (auto& sub : subs) {
            EXPECT_EQ((co_await sub.async_receive(use_awaitable)).message(), "x");
        }
    });
}

TEST(fanout, resubscribing_while_the_broker_unsubscribe_is_in_flight_works) {
    counted backend;
    run_async_test([&](asio::io_context& io) -> asio::awaitable<void> {
        auto bc = backend.make(io);
        co_await bc.async_connect(use_awaitable);
        for (int round = 0; round < 20; ++round) {
            auto sub = co_await bc.async_subscribe("flap", use_awaitable);
            co_await bc.async_publish("flap", std::to_string(round), use_awaitable);
            EXPECT_EQ((co_await sub.async_receive(use_awaitable)).message(), std::to_string(round));
        }
        co_await eventually([&] { return bc.stats().active_channels == 0; });
        EXPECT_EQ(backend.calls->subscribes_of("flap"), backend.calls->unsubscribes_of("flap"));
    });
}

TEST(fanout, callback_subscription_delivers_in_order_until_destroyed) {
    run_async_test([&](asio::io_context& io) -> asio::awaitable<void> {
        broadcast bc(io, "memory://");
        co_await bc.async_connect(use_awaitable);
        std::vector<std::string> got;
        const channel_list channels{"a", "b"};  // g++ 12: no braced list across co_await
        auto handle = co_await bc.async_subscribe_callback(
            channels, [&](const event& ev) { got.push_back(std::string(ev.message())); },
            use_awaitable);
        EXPECT_EQ(handle.channels(), (std::vector<std::string>{"a", "b"}));
        for (int i = 0; i < 200; ++i) {
            co_await bc.async_publish(i % 2 ? "a" : "b", std::to_string(i), use_awaitable);
        }
        co_await eventually([&] { return got.size() == 200; });
        for (int i = 0; i < 200; ++i) {
            EXPECT_EQ(got[i], std::to_string(i));
        }
        handle.unsubscribe();
        co_await bc.async_publish("a", "late", use_awaitable);
        co_await eventually([&] { return bc.stats().active_channels == 0; });
        EXPECT_EQ(got.size(), 200u);
    });
}

TEST(fanout, works_with_callbacks_futures_and_deferred) {
    asio::io_context io;
    broadcast bc(io, "memory://");
    std::thread runner;
    auto guard = asio::make_work_guard(io);
    runner = std::thread([&] { io.run(); });

    bc.async_connect(asio::use_future).get();
    auto sub = bc.async_subscribe("tokens", asio::use_future).get();
    std::promise<error_code> published;
    bc.async_publish("tokens", "via callback", [&](error_code ec) { published.set_value(ec); });
    EXPECT_FALSE(published.get_future().get());
    EXPECT_EQ(sub.async_receive(asio::use_future).get().message(), "via callback");

    auto op = bc.async_publish("tokens", "via deferred", asio::deferred);
    std::move(op)(asio::use_future).get();
    EXPECT_EQ(sub.async_receive(asio::use_future).get().message(), "via deferred");

    EXPECT_EQ(sub.receive_for(10ms), std::nullopt);
    bc.async_publish("tokens", "blocking", asio::use_future).get();
    auto ev = sub.receive_for(5s);
    ASSERT_TRUE(ev);
    EXPECT_EQ(ev->message(), "blocking");

    bc.async_disconnect(asio::use_future).get();
    guard.reset();
    runner.join();
}

// A receive completes on its handler's own executor (here a strand of another
// io_context), which counts it as work while it is pending.
TEST(fanout, a_receive_completes_on_its_handlers_executor) {
    asio::io_context io;     // the broadcast's
    asio::io_context other;  // the handler's
    broadcast bc(io, "memory://");
    bc.async_connect([](error_code ec) { EXPECT_FALSE(ec); });
    io.run();
    io.restart();
    subscriber sub;
    bc.async_subscribe("where", [&](error_code ec, subscriber s) {
        EXPECT_FALSE(ec);
        sub = std::move(s);
    });
    io.run();
    io.restart();

    auto strand = asio::make_strand(other);
    std::optional<std::string> received;
    bool on_strand = false;
    sub.async_receive(asio::bind_executor(strand, [&](error_code ec, event ev) {
        EXPECT_FALSE(ec);
        on_strand = strand.running_in_this_thread();
        received = std::string(ev.message());
    }));
    EXPECT_EQ(other.poll(), 0u);
    EXPECT_FALSE(other.stopped());  // the pending receive is work of `other`

    bc.async_publish("where", "here", [](error_code ec) { EXPECT_FALSE(ec); });
    io.run();
    EXPECT_FALSE(received);  // not on the broadcast's io_context
    other.run();             // returns once the handler has run: no work is left
    EXPECT_EQ(received, "here");
    EXPECT_TRUE(on_strand);
}

TEST(fanout, a_pending_receive_can_be_cancelled) {
    run_async_test([&](asio::io_context& io) -> asio::awaitable<void> {
        broadcast bc(io, "memory://");
        co_await bc.async_connect(use_awaitable);
        auto sub = co_await bc.async_subscribe("cancel", use_awaitable);
        asio::cancellation_signal signal;
        std::optional<error_code> result;
        sub.async_receive(asio::bind_cancellation_slot(signal.slot(),
                                                       [&](error_code ec, event) { result = ec; }));
        signal.emit(asio::cancellation_type::terminal);
        co_await eventually([&] { return result.has_value(); });
        EXPECT_EQ(*result, asio::error::operation_aborted);
        // The subscriber itself stays usable.
        co_await bc.async_publish("cancel", "still here", use_awaitable);
        EXPECT_EQ((co_await sub.async_receive(use_awaitable)).message(), "still here");
    });
}

TEST(fanout, a_second_concurrent_receive_is_refused) {
    run_async_test([&](asio::io_context& io) -> asio::awaitable<void> {
        broadcast bc(io, "memory://");
        co_await bc.async_connect(use_awaitable);
        auto sub = co_await bc.async_subscribe("twice", use_awaitable);
        std::optional<error_code> first;
        sub.async_receive([&](error_code ec, event) { first = ec; });
        auto [ec, ev] = co_await sub.async_receive(asio::as_tuple(use_awaitable));
        EXPECT_EQ(ec, error::receive_in_progress);
        co_await bc.async_publish("twice", "x", use_awaitable);
        co_await eventually([&] { return first.has_value(); });
        EXPECT_FALSE(*first);
    });
}

TEST(fanout, reports_state_changes_and_counts_reconnects) {
    auto calls = std::make_shared<backend_calls>();
    run_async_test([&](asio::io_context& io) -> asio::awaitable<void> {
        auto owned = std::make_unique<counting_backend>(calls);
        auto* raw = owned.get();
        broadcast bc(io.get_executor(), std::move(owned));
        std::vector<connection_state> states;
        bc.on_state_change([&](connection_state s, error_code) { states.push_back(s); });
        EXPECT_EQ(bc.state(), connection_state::disconnected);
        co_await bc.async_connect(use_awaitable);
        EXPECT_EQ(bc.state(), connection_state::connected);
        raw->simulate_reconnect();
        co_await eventually([&] { return bc.stats().reconnects == 1; });
        co_await bc.async_disconnect(use_awaitable);
        co_await eventually([&] { return states.size() >= 5; });
        EXPECT_EQ(states, (std::vector<connection_state>{
                              connection_state::connecting, connection_state::connected,
                              connection_state::reconnecting, connection_state::connected,
                              connection_state::disconnected}));
    });
}

TEST(fanout, stats_count_published_delivered_and_dropped) {
    run_async_test([&](asio::io_context& io) -> asio::awaitable<void> {
        broadcast bc(io, "memory://");
        co_await bc.async_connect(use_awaitable);
        auto roomy = co_await bc.async_subscribe("s", use_awaitable);
        auto tiny = co_await bc.async_subscribe(
            "s", subscribe_options{1, overflow_policy::drop_newest}, use_awaitable);
        for (int i = 0; i < 3; ++i) {
            co_await bc.async_publish("s", "m", use_awaitable);
        }
        const auto s = bc.stats();
        EXPECT_EQ(s.published, 3u);
        EXPECT_EQ(s.received, 3u);
        EXPECT_EQ(s.delivered, 4u);  // 3 to roomy, 1 to tiny
        EXPECT_EQ(s.dropped, 2u);
        EXPECT_EQ(s.active_channels, 1u);
        EXPECT_EQ(s.active_subscribers, 2u);
        EXPECT_EQ(s.reconnects, 0u);
    });
}

TEST(fanout, queues_are_bounded_by_bytes_too) {
    run_async_test([&](asio::io_context& io) -> asio::awaitable<void> {
        broadcast bc(io, "memory://");
        co_await bc.async_connect(use_awaitable);
        auto sub = co_await bc.async_subscribe(
            "bytes", subscribe_options{100, overflow_policy::drop_oldest, 10}, use_awaitable);
        const std::vector<std::string> messages{"1111", "2222", "3333", "4444", "far too large"};
        for (const auto& m : messages) {
            co_await bc.async_publish("bytes", m, use_awaitable);
        }
        // 10 bytes hold two 4-byte messages; the 13-byte one never fits.
        EXPECT_EQ(sub.queued(), 2u);
        EXPECT_EQ(sub.dropped(), 3u);
        EXPECT_EQ(sub.try_receive()->message(), "3333");
        EXPECT_EQ(sub.try_receive()->message(), "4444");
    });
}

// Under the close policy nothing is lost silently: a message that could never fit ends
// the subscriber after what it queued, as a full queue would.
TEST(fanout, a_message_that_never_fits_ends_a_subscriber_with_the_close_policy) {
    run_async_test([&](asio::io_context& io) -> asio::awaitable<void> {
        broadcast bc(io, "memory://");
        co_await bc.async_connect(use_awaitable);
        auto sub = co_await bc.async_subscribe(
            "bytes", subscribe_options{100, overflow_policy::close, 10}, use_awaitable);
        for (const auto* m : {"1111", "far too large", "2222"}) {
            co_await bc.async_publish("bytes", m, use_awaitable);
        }
        EXPECT_EQ(sub.try_receive()->message(), "1111");
        auto [ec, ev] = co_await sub.async_receive(asio::as_tuple(use_awaitable));
        EXPECT_EQ(ec, error::subscriber_overflow);
        EXPECT_EQ(sub.dropped(), 1u);
    });
}

TEST(fanout, subscribing_to_no_channel_is_an_error) {
    run_async_test([&](asio::io_context& io) -> asio::awaitable<void> {
        broadcast bc(io, "memory://");
        co_await bc.async_connect(use_awaitable);
        auto [ec, sub] =
            co_await bc.async_subscribe(std::vector<std::string>{}, asio::as_tuple(use_awaitable));
        EXPECT_EQ(ec, error::invalid_channel);
        EXPECT_FALSE(sub);
    });
}

TEST(fanout, subscribers_may_outlive_their_broadcast) {
    run_async_test([&](asio::io_context& io) -> asio::awaitable<void> {
        std::optional<broadcast> bc;
        bc.emplace(io, "memory://");
        co_await bc->async_connect(use_awaitable);
        auto sub = co_await bc->async_subscribe("gone", use_awaitable);
        bc.reset();
        auto [ec, ev] = co_await sub.async_receive(asio::as_tuple(use_awaitable));
        EXPECT_EQ(ec, error::end_of_stream);
    });
}

}  // namespace
}  // namespace broadcaster::test
