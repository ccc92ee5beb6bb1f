// The core under races and faults, each case with its interleaving fixed by the test:
// a subscribe racing the unsubscribe of the same channel, a broker refusing a channel,
// teardown with work in flight, callbacks that throw, and empty subscriber handles.

#include "completion.hpp"
#include "test_support.hpp"

#include <broadcaster/blocking_broadcast.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_future.hpp>

#include <map>

namespace broadcaster::test {
namespace {

using asio::use_awaitable;
using boost::system::error_code;

// A backend whose subscribes (and optionally unsubscribes) wait for the test: it
// refuses `refused` at once, keeps the others until `confirm_all()`, and counts the
// calls. Everything else succeeds.
class held_backend final : public backend {
  public:
    struct shared {
        std::map<std::string, int> subscribes;
        int alive = 0;
    };

    explicit held_backend(std::shared_ptr<shared> s, std::string refused = {},
                          bool hold_unsubscribes = false)
        : shared_(std::move(s)),
          refused_(std::move(refused)),
          hold_unsubscribes_(hold_unsubscribes) {
        ++shared_->alive;
    }
    ~held_backend() override {
        for (auto& h : held_) {
            detail::post_completion(std::move(h), executor(),
                                    error_code(asio::error::operation_aborted));
        }
        --shared_->alive;
    }

    void async_connect(completion_handler handler) override { ok(std::move(handler)); }
    void async_disconnect(completion_handler handler) override { ok(std::move(handler)); }
    void async_subscribe(std::string channel, completion_handler handler) override {
        ++shared_->subscribes[channel];
        if (channel == refused_) {
            detail::post_completion(std::move(handler), executor(),
                                    error_code(error::invalid_channel));
            return;
        }
        held_.push_back(std::move(handler));
    }
    void async_unsubscribe(std::string, completion_handler handler) override {
        if (hold_unsubscribes_) {
            held_.push_back(std::move(handler));
            return;
        }
        ok(std::move(handler));
    }
    void async_publish(std::string, std::string, completion_handler handler) override {
        ok(std::move(handler));
    }

    void confirm_all() {
        for (auto& h : std::exchange(held_, {})) {
            ok(std::move(h));
        }
    }

  private:
    void ok(completion_handler handler) {
        detail::post_completion(std::move(handler), executor(), error_code());
    }

    std::shared_ptr<shared> shared_;
    std::string refused_;
    bool hold_unsubscribes_;
    std::vector<completion_handler> held_;
};

// Runs what is ready (an io_context that ran out of work stops until restarted).
void settle(asio::io_context& io) {
    io.restart();
    io.poll();
}

// Issue 11, item 1: the last subscriber leaves and a new one comes while the broker
// UNSUBSCRIBE is still in flight. The new subscribe used to complete at once (the old
// subscription still looked confirmed) and the broker subscription was then gone.
TEST(lifecycle, a_subscribe_during_the_unsubscribe_waits_for_it_then_subscribes_again) {
    asio::io_context io;
    auto shared = std::make_shared<held_backend::shared>();
    auto owned = std::make_unique<held_backend>(shared, "", true);
    auto* backend = owned.get();
    broadcast bc(io.get_executor(), std::move(owned));
    bc.async_connect([](error_code) {});
    settle(io);
    subscriber first;
    bc.async_subscribe("again", [&](error_code, subscriber s) { first = std::move(s); });
    settle(io);
    backend->confirm_all();
    settle(io);
    ASSERT_TRUE(first.is_open());
    first.unsubscribe();
    settle(io);  // the broker unsubscribe is in flight, held by the backend
    std::optional<error_code> result;
    subscriber second;
    bc.async_subscribe("again", [&](error_code ec, subscriber s) {
        result = ec;
        second = std::move(s);
    });
    settle(io);
    EXPECT_FALSE(result.has_value()) << "completed while the unsubscribe was in flight";
    EXPECT_EQ(shared->subscribes["again"], 1);
    backend->confirm_all();  // the unsubscribe completes: the core subscribes again
    settle(io);
    EXPECT_EQ(shared->subscribes["again"], 2);
    EXPECT_FALSE(result.has_value());
    backend->confirm_all();
    settle(io);
    ASSERT_TRUE(result.has_value());
    EXPECT_FALSE(*result);
}

// Issue 11, item 2: one channel of a multi-channel subscribe is refused while another
// is still pending. The refused one used to be asked again at once, in a loop, until
// the other was confirmed.
TEST(lifecycle, a_refused_channel_is_not_retried_while_another_is_pending) {
    asio::io_context io;
    auto shared = std::make_shared<held_backend::shared>();
    auto owned = std::make_unique<held_backend>(shared, "bad");
    auto* backend = owned.get();
    broadcast bc(io.get_executor(), std::move(owned));
    bc.async_connect([](error_code) {});
    settle(io);
    std::optional<error_code> result;
    bc.async_subscribe({"bad", "slow"}, [&](error_code ec, subscriber) { result = ec; });
    for (int i = 0; i < 1000; ++i) {
        io.restart();
        io.poll_one();  // a retry loop would keep the queue busy for ever
    }
    EXPECT_EQ(shared->subscribes["bad"], 1);
    EXPECT_FALSE(result.has_value());
    backend->confirm_all();
    settle(io);
    ASSERT_TRUE(result.has_value());
    EXPECT_EQ(*result, error::invalid_channel);
    EXPECT_EQ(shared->subscribes["bad"], 1);
    EXPECT_EQ(bc.stats().active_subscribers, 0u);
    EXPECT_EQ(bc.stats().active_channels, 0u);  // "slow" was dropped again

    // A later subscribe asks the broker again (the refusal may have been transient).
    bc.async_subscribe("bad", [&](error_code ec, subscriber) { result = ec; });
    settle(io);
    EXPECT_EQ(shared->subscribes["bad"], 2);
}

// Issue 11, item 3: the backend keeps the subscribe's handler; the broadcast goes,
// then its io_context without running again. Nothing may survive it.
TEST(lifecycle, destroying_the_io_context_frees_the_core_and_the_backend) {
    auto shared = std::make_shared<held_backend::shared>();
    std::weak_ptr<int> handler_alive;
    {
        asio::io_context io;
        auto bc =
            std::make_unique<broadcast>(io.get_executor(), std::make_unique<held_backend>(shared));
        bc->async_connect([](error_code) {});
        settle(io);
        auto token = std::make_shared<int>(0);
        handler_alive = token;
        bc->async_subscribe("held", [token](error_code, subscriber) {});
        settle(io);
        EXPECT_EQ(shared->subscribes["held"], 1);
        bc.reset();
    }
    EXPECT_EQ(shared->alive, 0) << "the backend leaked";
    EXPECT_TRUE(handler_alive.expired()) << "the subscribe's handler leaked";
}

// Issue 11, item 5: a callback that throws ends its subscription, visibly.
TEST(lifecycle, a_throwing_callback_ends_its_subscription_with_an_error) {
    run_async_test([&](asio::io_context& io) -> asio::awaitable<void> {
        broadcast bc(io, "memory://");
        co_await bc.async_connect(use_awaitable);
        int calls = 0;
        auto handle = co_await bc.async_subscribe_callback(
            "throws",
            [&](const event& ev) {
                ++calls;
                if (ev.message() == "bad") {
                    throw std::runtime_error("app bug");
                }
            },
            use_awaitable);
        co_await bc.async_publish("throws", "good", use_awaitable);
        co_await bc.async_publish("throws", "bad", use_awaitable);
        co_await bc.async_publish("throws", "after", use_awaitable);
        co_await eventually([&] { return handle.error() == error::callback_failed; });
        EXPECT_EQ(calls, 2);
        co_await eventually(
            [&] { return bc.stats().active_subscribers == 0 && bc.stats().active_channels == 0; });
    });
}

TEST(lifecycle, a_throwing_callback_does_not_end_the_blocking_io_thread) {
    blocking_broadcast bc("memory://");
    bc.connect();
    auto handle = bc.subscribe_callback("throws", [](const event&) { throw 42; });
    bc.publish("throws", "boom");
    // The I/O thread still serves: a publish and a subscribe complete.
    auto sub = bc.subscribe("still");
    bc.publish("still", "alive");
    auto ev = sub.receive_for(5s);
    ASSERT_TRUE(ev);
    EXPECT_EQ(ev->message(), "alive");
    EXPECT_EQ(handle.error(), error::callback_failed);
}

// Issue 11, item 6: unsubscribe() on one thread while another receives.
TEST(lifecycle, unsubscribe_may_race_receiving_on_another_thread) {
    asio::io_context io;
    auto guard = asio::make_work_guard(io);
    std::thread runner([&] { io.run(); });
    broadcast bc(io.get_executor(), "memory://");
    bc.async_connect(asio::use_future).get();
    for (int round = 0; round < 20; ++round) {
        auto sub = bc.async_subscribe("race", asio::use_future).get();
        std::atomic<bool> go{false};
        std::thread reader([&] {
            while (!go) {
            }
            for (int i = 0; i < 200; ++i) {
                (void)sub.try_receive();
                (void)sub.is_open();
                (void)sub.error();
                (void)sub.queued();
            }
        });
        go = true;
        sub.unsubscribe();
        reader.join();
        EXPECT_FALSE(sub.is_open());
        EXPECT_EQ(sub.error(), asio::error::operation_aborted);
    }
    bc.async_disconnect(asio::use_future).get();
    guard.reset();
    runner.join();
}

// Issue 11, item 7: an empty handle completes a receive on the broadcast's executor
// (the documented default), not on a hidden thread.
TEST(lifecycle, a_moved_from_subscriber_completes_on_the_broadcasts_executor) {
    asio::io_context io;
    broadcast bc(io.get_executor(), "memory://");
    bc.async_connect([](error_code) {});
    io.run();
    io.restart();
    subscriber sub;
    bc.async_subscribe("moved", [&](error_code, subscriber s) { sub = std::move(s); });
    io.run();
    io.restart();
    auto taken = std::move(sub);
    std::optional<error_code> result;
    bool on_io = false;
    sub.async_receive([&](error_code ec, event) {
        result = ec;
        on_io = io.get_executor().running_in_this_thread();
    });
    EXPECT_FALSE(result.has_value()) << "completed inline or on another thread";
    io.run();
    ASSERT_TRUE(result.has_value());
    EXPECT_EQ(*result, error::end_of_stream);
    EXPECT_TRUE(on_io);
}

}  // namespace
}  // namespace broadcaster::test
