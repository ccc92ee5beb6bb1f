// The core's promises tried as a hostile user would: teardown with a receive pending,
// completions the backend delivers late or out of order, observers and callbacks that
// throw or destroy the broadcast. Each case fixes its interleaving itself.

#include "completion.hpp"
#include "test_support.hpp"

#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_future.hpp>

#include <deque>
#include <map>
#include <mutex>

namespace broadcaster::test {
namespace {

using boost::system::error_code;

// A backend whose every operation can be held by the test and completed later, in any
// order. What it holds is completed with operation_aborted when it is destroyed.
class scripted_backend final : public backend {
  public:
    enum op { connect_op, disconnect_op, subscribe_op, unsubscribe_op, publish_op };
    struct control {
        std::map<op, bool> hold;
        std::map<op, std::deque<completion_handler>> held;
        std::map<op, int> calls;
        int alive = 0;
        backend* self = nullptr;
    };

    explicit scripted_backend(std::shared_ptr<control> c) : control_(std::move(c)) {
        ++control_->alive;
        control_->self = this;
    }
    ~scripted_backend() override {
        for (auto& [kind, handlers] : control_->held) {
            for (auto& h : handlers) {
                detail::post_completion(std::move(h), executor(),
                                        error_code(asio::error::operation_aborted));
            }
            handlers.clear();
        }
        --control_->alive;
        control_->self = nullptr;
    }

    void async_connect(completion_handler h) override { run(connect_op, std::move(h)); }
    void async_disconnect(completion_handler h) override { run(disconnect_op, std::move(h)); }
    void async_subscribe(std::string, completion_handler h) override {
        run(subscribe_op, std::move(h));
    }
    void async_unsubscribe(std::string, completion_handler h) override {
        run(unsubscribe_op, std::move(h));
    }
    void async_publish(std::string channel, std::string message, completion_handler h) override {
        sink().deliver(event(std::move(channel), std::move(message)));
        run(publish_op, std::move(h));
    }

    // Completes the oldest held operation of `kind` (on the backend's strand).
    void release(op kind, error_code ec = {}) {
        auto& q = control_->held[kind];
        ASSERT_FALSE(q.empty());
        auto h = std::move(q.front());
        q.pop_front();
        detail::post_completion(std::move(h), executor(), ec);
    }

    void report(connection_state state) {
        asio::post(executor(), [this, state] { sink().state_changed(state, {}); });
    }

  private:
    void run(op kind, completion_handler h) {
        ++control_->calls[kind];
        if (control_->hold[kind]) {
            control_->held[kind].push_back(std::move(h));
            return;
        }
        detail::post_completion(std::move(h), executor(), error_code());
    }

    std::shared_ptr<control> control_;
};

// Runs what is ready (an io_context that ran out of work stops until restarted).
void settle(asio::io_context& io) {
    io.restart();
    io.poll();
}

// Destroying the broadcast, then its io_context without running it, must free every
// handler still waiting, as Asio does for its own operations (docs/design.md). A
// pending async_receive is such an operation: in the usual session pattern its handler
// owns the subscriber (and so its own state), a cycle only destroying the handler
// breaks.
TEST(core_attack, a_pending_receive_is_freed_with_the_io_context) {
    std::weak_ptr<int> handler_alive;
    {
        asio::io_context io;
        auto bc = std::make_unique<broadcast>(io.get_executor(), "memory://");
        bc->async_connect([](error_code) {});
        settle(io);
        struct session {
            subscriber sub;
        };
        auto s = std::make_shared<session>();
        bc->async_subscribe("pending",
                            [s](error_code, subscriber sub) { s->sub = std::move(sub); });
        settle(io);
        ASSERT_TRUE(s->sub.is_open());
        auto token = std::make_shared<int>(0);
        handler_alive = token;
        s->sub.async_receive([s, token](error_code, event) {});
        s.reset();
        token.reset();
        bc.reset();
    }
    EXPECT_TRUE(handler_alive.expired()) << "the pending receive's handler leaked";
}

// The same with a coroutine awaiting the receive: its frame (and all it owns) must be
// destroyed with the io_context.
TEST(core_attack, a_coroutine_awaiting_a_receive_is_freed_with_the_io_context) {
    std::weak_ptr<int> frame_alive;
    {
        asio::io_context io;
        auto bc = std::make_unique<broadcast>(io.get_executor(), "memory://");
        bc->async_connect([](error_code) {});
        settle(io);
        asio::co_spawn(
            io,
            [&bc, &frame_alive]() -> asio::awaitable<void> {
                auto token = std::make_shared<int>(0);
                frame_alive = token;
                auto sub = co_await bc->async_subscribe("awaiting", asio::use_awaitable);
                (void)co_await sub.async_receive(asio::use_awaitable);
            },
            asio::detached);
        settle(io);
        ASSERT_FALSE(frame_alive.expired());
        bc.reset();
    }
    EXPECT_TRUE(frame_alive.expired()) << "the coroutine frame leaked";
}

// The usual coroutine shape: the broadcast lives in the coroutine, which waits for
// events until the program stops its io_context and destroys it. The frame owns the
// broadcast, whose subscriber state owns the pending receive's handler, which owns the
// frame: unless the io_context's destruction destroys that handler, the broadcast, its
// backend and the backend's connections are never freed.
TEST(core_attack, a_coroutine_owning_its_broadcast_frees_the_backend_with_the_io_context) {
    auto control = std::make_shared<scripted_backend::control>();
    std::weak_ptr<int> frame_alive;
    {
        asio::io_context io;
        asio::co_spawn(
            io,
            [control, &frame_alive]() -> asio::awaitable<void> {
                auto token = std::make_shared<int>(0);
                frame_alive = token;
                broadcast bc(co_await asio::this_coro::executor,
                             std::make_unique<scripted_backend>(control));
                co_await bc.async_connect(asio::use_awaitable);
                auto sub = co_await bc.async_subscribe("events", asio::use_awaitable);
                for (;;) {
                    (void)co_await sub.async_receive(asio::use_awaitable);
                }
            },
            asio::detached);
        settle(io);
        ASSERT_EQ(control->calls[scripted_backend::subscribe_op], 1);
        ASSERT_FALSE(frame_alive.expired());
        io.stop();
    }
    EXPECT_TRUE(frame_alive.expired()) << "the coroutine frame leaked";
    EXPECT_EQ(control->alive, 0) << "the backend (and its connections) leaked";
}

// A disconnect whose backend completion arrives after a new connect completed must
// not leave the broadcast saying `disconnected` while it is connected. The backend
// contract orders nothing between a disconnect and the next connect.
TEST(core_attack, a_late_disconnect_completion_does_not_override_a_newer_connect) {
    asio::io_context io;
    auto control = std::make_shared<scripted_backend::control>();
    broadcast bc(io.get_executor(), std::make_unique<scripted_backend>(control));
    std::vector<connection_state> seen;
    bc.on_state_change([&](connection_state s, error_code) { seen.push_back(s); });
    bc.async_connect([](error_code) {});
    settle(io);
    ASSERT_EQ(bc.state(), connection_state::connected);

    control->hold[scripted_backend::disconnect_op] = true;
    bc.async_disconnect([](error_code) {});
    settle(io);
    std::optional<error_code> connected;
    bc.async_connect([&](error_code ec) { connected = ec; });
    settle(io);
    ASSERT_TRUE(connected.has_value());
    ASSERT_FALSE(*connected);
    static_cast<scripted_backend*>(control->self)->release(scripted_backend::disconnect_op);
    settle(io);

    // The broadcast is connected: publishing works.
    std::optional<error_code> published;
    bc.async_publish("c", "m", [&](error_code ec) { published = ec; });
    settle(io);
    ASSERT_TRUE(published.has_value());
    EXPECT_FALSE(*published);
    EXPECT_EQ(bc.state(), connection_state::connected) << "state() lies";
    ASSERT_FALSE(seen.empty());
    EXPECT_EQ(seen.back(), connection_state::connected) << "the observer's last call lies";
}

}  // namespace
}  // namespace broadcaster::test
