// Waking a subscriber: a receive whose handler runs on an io_context is completed
// straight on that io_context, in a block of the thread's completion cache
// (src/completion_blocks.hpp). What Asio promises of its own operations must still hold:
// a pending receive is work, a completion not yet run is destroyed with its io_context.

#include "completion_blocks.hpp"
#include "wakeup_support.hpp"

#include <boost/asio/bind_executor.hpp>

#include <vector>

namespace broadcaster::test {
namespace {

using boost::system::error_code;

TEST(wakeup, a_pending_receive_on_an_io_context_is_work_until_its_handler_ran) {
    asio::io_context io;
    broadcast bc(io.get_executor(), "memory://");
    auto subs = subscribe_all(io, bc, "work", 1);
    ASSERT_EQ(subs.size(), 1u);
    ASSERT_FALSE(has_work(io))
        << "the broadcast alone keeps work: this test cannot see a receive's";

    int received = 0;
    subs[0].async_receive(asio::bind_executor(io.get_executor(), [&](error_code ec, event ev) {
        EXPECT_FALSE(ec) << ec.message();
        EXPECT_EQ(ev.message(), "hello");
        ++received;
    }));
    EXPECT_TRUE(has_work(io)) << "a pending receive must keep io.run() from returning";
    EXPECT_EQ(received, 0);

    bc.async_publish("work", "hello", [](error_code ec) { EXPECT_FALSE(ec) << ec.message(); });
    EXPECT_FALSE(has_work(io));
    EXPECT_EQ(received, 1);
}

TEST(wakeup, a_completion_not_yet_run_is_destroyed_with_its_io_context) {
    asio::io_context io;
    broadcast bc(io.get_executor(), "memory://");
    auto subs = subscribe_all(io, bc, "queued", 1);
    ASSERT_EQ(subs.size(), 1u);
    std::weak_ptr<int> handler_alive;
    bool called = false;
    {
        // The handler runs on an io_context of its own, which never runs.
        asio::io_context handler_io;
        auto token = std::make_shared<int>(0);
        handler_alive = token;
        subs[0].async_receive(asio::bind_executor(
            handler_io.get_executor(), [token, &called](error_code, event) { called = true; }));
        token.reset();
        bc.async_publish("queued", "hello", [](error_code ec) { EXPECT_FALSE(ec); });
        io.run();  // delivers: the receive's completion is queued on handler_io
        EXPECT_FALSE(handler_alive.expired());
        EXPECT_EQ(subs[0].queued(), 0u) << "the message went to the receive";
    }
    EXPECT_FALSE(called);
    EXPECT_TRUE(handler_alive.expired()) << "the queued completion leaked";
}

TEST(wakeup, a_fan_out_reuses_the_threads_completion_blocks) {
    if (!detail::completion_blocks::enabled) {
        GTEST_SKIP() << "no block is kept under AddressSanitizer";
    }
    constexpr int subscribers = 100;
    asio::io_context io;
    broadcast bc(io.get_executor(), "memory://");
    auto subs = subscribe_all(io, bc, "room", subscribers);
    ASSERT_EQ(subs.size(), std::size_t{subscribers});

    int received = 0;
    const auto receive_all = [&] {
        for (auto& sub : subs) {
            sub.async_receive([&](error_code ec, event) {
                EXPECT_FALSE(ec) << ec.message();
                ++received;
            });
        }
    };
    receive_all();
    bc.async_publish("room", "first", [](error_code ec) { EXPECT_FALSE(ec); });
    io.run();
    io.restart();
    ASSERT_EQ(received, subscribers);
    // A hundred completions were in flight at once: their blocks are kept, for the next.
    const auto kept = detail::completion_blocks::cached();
    EXPECT_GE(kept, std::size_t{subscribers});
    EXPECT_LE(kept, detail::completion_blocks::max_blocks);

    receive_all();
    bc.async_publish("room", "second", [](error_code ec) { EXPECT_FALSE(ec); });
    io.run();
    EXPECT_EQ(received, 2 * subscribers);
    EXPECT_EQ(detail::completion_blocks::cached(), kept) << "the second fan-out allocated anew";
}

TEST(wakeup, blocks_beyond_the_bound_go_back_to_the_heap) {
    if (!detail::completion_blocks::enabled) {
        GTEST_SKIP() << "no block is kept under AddressSanitizer";
    }
    std::vector<void*> blocks;
    const auto before = detail::completion_blocks::cached();
    for (std::size_t i = 0; i < detail::completion_blocks::max_blocks + 10; ++i) {
        blocks.push_back(
            detail::completion_blocks::allocate(detail::completion_blocks::block_size));
    }
    for (void* block : blocks) {
        detail::completion_blocks::deallocate(block, detail::completion_blocks::block_size);
    }
    EXPECT_EQ(detail::completion_blocks::cached(), detail::completion_blocks::max_blocks);
    EXPECT_GE(detail::completion_blocks::max_blocks, before);
    // Larger requests are not blocks at all.
    void* large = detail::completion_blocks::allocate(detail::completion_blocks::block_size + 1);
    detail::completion_blocks::deallocate(large, detail::completion_blocks::block_size + 1);
    EXPECT_EQ(detail::completion_blocks::cached(), detail::completion_blocks::max_blocks);
}

}  // namespace
}  // namespace broadcaster::test
