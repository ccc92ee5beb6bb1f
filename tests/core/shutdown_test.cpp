// broadcast::async_shutdown: it completes only once the backend has let go of
// everything (connections closed, every handler it was given run or destroyed), and the
// broadcast can connect again afterwards.

#include "scripted_backend.hpp"
#include "test_servers.hpp"
#include "test_support.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/detached.hpp>

#include <chrono>
#include <optional>
#include <thread>

namespace broadcaster::test {
namespace {

using asio::use_awaitable;
using boost::system::error_code;

TEST(shutdown, ends_the_subscribers_and_the_broadcast_can_connect_again) {
    run_async_test([](asio::io_context& io) -> asio::awaitable<void> {
        broadcast bc(io, "memory://");
        co_await bc.async_connect(use_awaitable);
        auto sub = co_await bc.async_subscribe("room", use_awaitable);
        co_await bc.async_shutdown(use_awaitable);
        EXPECT_EQ(bc.state(), connection_state::disconnected);
        auto [ec, ev] = co_await sub.async_receive(asio::as_tuple(use_awaitable));
        EXPECT_EQ(ec, error::end_of_stream);

        co_await bc.async_connect(use_awaitable);
        auto again = co_await bc.async_subscribe("room", use_awaitable);
        co_await bc.async_publish("room", "hello", use_awaitable);
        EXPECT_EQ((co_await receive(again)).message(), "hello");
        co_await bc.async_shutdown(use_awaitable);
        co_await bc.async_shutdown(use_awaitable);  // when already shut down: at once
    });
}

// A slow backend keeps a subscribe's handler after its disconnect completed: the
// shutdown waits until the backend lets go of it.
TEST(shutdown, waits_until_the_backend_has_let_go_of_every_handler) {
    asio::io_context io;
    auto shared = std::make_shared<scripted_backend::shared>();
    shared->keep_handlers = true;
    broadcast bc(io.get_executor(), std::make_unique<scripted_backend>(shared));
    bc.async_connect([](error_code) {});
    io.poll();
    std::optional<error_code> subscribed;
    bc.async_subscribe("held", [&](error_code ec, subscriber) { subscribed = ec; });
    io.restart();
    io.poll();
    ASSERT_EQ(shared->backend->held_count(), 1u);

    bool done = false;
    bc.async_shutdown([&](error_code ec) {
        EXPECT_FALSE(ec);
        done = true;
    });
    io.restart();
    io.poll();
    EXPECT_EQ(shared->disconnects, 1);
    ASSERT_TRUE(subscribed);
    EXPECT_TRUE(*subscribed) << "the waiting subscribe fails with the disconnect";
    EXPECT_FALSE(done) << "completed while the backend still holds a handler";

    shared->backend->release_all();
    io.restart();
    io.poll();
    EXPECT_TRUE(done);
    EXPECT_EQ(bc.state(), connection_state::disconnected);
}

// A backend whose disconnect completes later from a thread of its own, as Kafka's does
// (it destroys its client on blocking threads): nothing of it is on the io_context
// meanwhile. The thread completes once the io_context stopped (it ran out of work), or
// after 100 ms.
class off_thread_teardown_backend final : public backend {
  public:
    struct shared {
        asio::io_context* io = nullptr;
        std::thread teardown;
    };
    explicit off_thread_teardown_backend(std::shared_ptr<shared> s) : shared_(std::move(s)) {}

    void async_connect(completion_handler handler) override { complete(std::move(handler), {}); }
    void async_disconnect(completion_handler handler) override {
        shared_->teardown = std::thread(
            [io = shared_->io, fallback = executor(), handler = std::move(handler)]() mutable {
                const auto until = std::chrono::steady_clock::now() + 100ms;
                while (!io->stopped() && std::chrono::steady_clock::now() < until) {
                    std::this_thread::sleep_for(1ms);
                }
                complete(std::move(handler), fallback, {});
            });
    }
    void async_subscribe(std::string, completion_handler handler) override {
        complete(std::move(handler), {});
    }
    void async_unsubscribe(std::string, completion_handler handler) override {
        complete(std::move(handler), {});
    }
    void async_publish(std::string, std::string, completion_handler handler) override {
        complete(std::move(handler), {});
    }

  private:
    std::shared_ptr<shared> shared_;
};

// A pending disconnect or shutdown keeps work on its handler's executor: `io.run()`
// does not return before its handler ran, even though the backend's teardown runs off
// the io_context; the handler runs exactly once.
void expect_pending_disconnect_holds_work(bool shutdown) {
    asio::io_context io;
    auto shared = std::make_shared<off_thread_teardown_backend::shared>();
    shared->io = &io;
    broadcast bc(io.get_executor(), std::make_unique<off_thread_teardown_backend>(shared));
    int completions = 0;
    // A plain callback: a coroutine (co_spawn) would keep work of its own meanwhile.
    bc.async_connect([&](error_code ec) {
        ASSERT_FALSE(ec) << ec.message();
        const auto done = [&](error_code) { ++completions; };
        if (shutdown) {
            bc.async_shutdown(done);
        } else {
            bc.async_disconnect(done);
        }
    });
    io.run();
    EXPECT_EQ(completions, 1) << "io.run() returned while the operation was pending";
    ASSERT_TRUE(shared->teardown.joinable());
    shared->teardown.join();
    io.restart();
    io.run();  // whatever the teardown left queued
    EXPECT_EQ(completions, 1);
    EXPECT_EQ(bc.state(), connection_state::disconnected);
}

TEST(shutdown, pending_shutdown_keeps_the_io_context_running) {
    expect_pending_disconnect_holds_work(true);
}

TEST(shutdown, pending_disconnect_keeps_the_io_context_running) {
    expect_pending_disconnect_holds_work(false);
}

// Against a real broker: once the shutdown completed, no socket of the broadcast is
// open and nothing of it is left on the io_context (which then runs out of work), though
// the broadcast still exists; it connects again afterwards.
void expect_shutdown_leaves_nothing(const std::string& url) {
    const auto sockets_before = open_sockets();
    asio::io_context io;
    broadcast bc(io.get_executor(), url);
    const auto channel = unique_name("shutdown");
    std::optional<std::size_t> sockets_at_shutdown;
    int publishes = 0;
    subscriber sub;
    bc.async_connect([&](error_code ec) {
        ASSERT_FALSE(ec) << ec.message();
        bc.async_subscribe(channel, [&](error_code ec, subscriber s) {
            ASSERT_FALSE(ec) << ec.message();
            sub = std::move(s);
            // Publishes still in flight when the shutdown starts.
            for (int i = 0; i < 50; ++i) {
                bc.async_publish(channel, "x", [&](error_code) { ++publishes; });
            }
            sub.async_receive([](error_code, event) {});
            bc.async_shutdown([&](error_code ec) {
                EXPECT_FALSE(ec);
                sockets_at_shutdown = open_sockets();
            });
        });
    });
    io.run_for(30s);
    ASSERT_TRUE(sockets_at_shutdown) << "the shutdown did not complete";
    EXPECT_EQ(*sockets_at_shutdown, sockets_before) << "a socket was still open";
    EXPECT_TRUE(io.stopped()) << "work of the broadcast was still pending after its shutdown";
    EXPECT_EQ(publishes, 50) << "every publish completes, with or without an error";
    EXPECT_EQ(bc.state(), connection_state::disconnected);

    std::optional<error_code> reconnected;
    io.restart();
    bc.async_connect([&](error_code ec) {
        reconnected = ec;
        bc.async_shutdown([](error_code) {});
    });
    io.run_for(30s);
    ASSERT_TRUE(reconnected);
    EXPECT_FALSE(*reconnected) << reconnected->message();
    EXPECT_TRUE(io.stopped());
    EXPECT_EQ(open_sockets(), sockets_before);
}

#ifdef BROADCASTER_WITH_REDIS
TEST(shutdown, redis_leaves_no_socket_and_no_pending_work) {
    expect_shutdown_leaves_nothing(redis_test_url());
}
#endif

#ifdef BROADCASTER_WITH_POSTGRES
TEST(shutdown, postgres_leaves_no_socket_and_no_pending_work) {
    expect_shutdown_leaves_nothing(postgres_test_url());
}
#endif

}  // namespace
}  // namespace broadcaster::test
