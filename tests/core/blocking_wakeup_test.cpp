// A thread blocked in receive_for wakes as soon as what it waits for happens: an event,
// the broadcast's disconnect, an unsubscribe from another thread, an overflow that ends
// the subscriber. The condition variable it waits on is made by the first blocking
// receive, so each case starts with a fresh subscriber, racing that first wait.

#include <broadcaster/blocking_broadcast.hpp>
#include <broadcaster/error.hpp>

#include <gtest/gtest.h>

#include <atomic>
#include <future>
#include <thread>

namespace broadcaster {
namespace {

using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;

// Far longer than any wake-up takes: a lost wake-up shows as a receive lasting it.
constexpr auto long_wait = 20s;
constexpr auto prompt = 5s;
constexpr int rounds = 200;

struct timed_receive {
    std::optional<event> ev;
    clock_type::duration took;
};

std::future<timed_receive> receive_on_a_thread(subscriber& sub) {
    return std::async(std::launch::async, [&sub] {
        const auto start = clock_type::now();
        auto ev = sub.receive_for(std::chrono::duration_cast<std::chrono::milliseconds>(long_wait));
        return timed_receive{std::move(ev), clock_type::now() - start};
    });
}

TEST(blocking_wakeup, an_event_wakes_the_first_blocking_receive) {
    blocking_broadcast bc("memory://");
    bc.connect();
    for (int i = 0; i < rounds; ++i) {
        auto sub = bc.subscribe("c");
        auto waiting = receive_on_a_thread(sub);
        if (i % 2 == 0) {
            std::this_thread::yield();
        }
        bc.publish("c", std::to_string(i));
        const auto got = waiting.get();
        ASSERT_TRUE(got.ev) << "round " << i;
        EXPECT_EQ(got.ev->message(), std::to_string(i));
        ASSERT_LT(got.took, prompt) << "round " << i;
    }
}

TEST(blocking_wakeup, two_blocked_threads_both_get_an_event) {
    blocking_broadcast bc("memory://");
    bc.connect();
    for (int i = 0; i < rounds / 4; ++i) {
        auto sub = bc.subscribe("c");
        auto first = receive_on_a_thread(sub);
        auto second = receive_on_a_thread(sub);
        bc.publish("c", "a");
        bc.publish("c", "b");
        const auto one = first.get();
        const auto two = second.get();
        ASSERT_TRUE(one.ev && two.ev) << "round " << i;
        EXPECT_NE(one.ev->message(), two.ev->message());
        ASSERT_LT(std::max(one.took, two.took), prompt) << "round " << i;
    }
}

TEST(blocking_wakeup, an_unsubscribe_from_another_thread_wakes_a_blocked_receive) {
    blocking_broadcast bc("memory://");
    bc.connect();
    for (int i = 0; i < rounds; ++i) {
        auto sub = bc.subscribe("c");
        auto waiting = receive_on_a_thread(sub);
        sub.unsubscribe();
        const auto got = waiting.get();
        EXPECT_FALSE(got.ev);
        ASSERT_LT(got.took, prompt) << "round " << i;
        EXPECT_EQ(sub.error(), boost::asio::error::operation_aborted);
    }
}

TEST(blocking_wakeup, a_disconnect_wakes_a_blocked_receive) {
    for (int i = 0; i < rounds / 4; ++i) {
        blocking_broadcast bc("memory://");
        bc.connect();
        auto sub = bc.subscribe("c");
        auto waiting = receive_on_a_thread(sub);
        bc.disconnect();
        const auto got = waiting.get();
        EXPECT_FALSE(got.ev);
        ASSERT_LT(got.took, prompt) << "round " << i;
        EXPECT_EQ(sub.error(), error::end_of_stream);
    }
}

TEST(blocking_wakeup, an_overflow_that_ends_the_subscriber_wakes_a_second_receiver) {
    blocking_broadcast bc("memory://");
    bc.connect();
    subscribe_options options;
    options.capacity = 1;
    options.policy = overflow_policy::close;
    auto sub = bc.subscribe("c", options);
    // The first event is taken by one receiver, the rest overflow: every receiver ends.
    auto first = receive_on_a_thread(sub);
    auto second = receive_on_a_thread(sub);
    for (int i = 0; i < 4; ++i) {
        bc.publish("c", std::to_string(i));
    }
    const auto one = first.get();
    const auto two = second.get();
    EXPECT_LT(std::max(one.took, two.took), prompt);
    EXPECT_FALSE(sub.is_open() && !one.ev && !two.ev);
}

}  // namespace
}  // namespace broadcaster
