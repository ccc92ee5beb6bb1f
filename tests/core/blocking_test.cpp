// The blocking facade, for programs not built on Asio.

#include <broadcaster/blocking_broadcast.hpp>
#include <broadcaster/error.hpp>

#include <gtest/gtest.h>

#include <condition_variable>
#include <mutex>

namespace broadcaster {
namespace {

using namespace std::chrono_literals;

TEST(blocking_broadcast, publishes_and_receives) {
    blocking_broadcast bc("memory://");
    bc.connect();
    auto sub = bc.subscribe({"a", "b"});
    bc.publish("a", "one");
    bc.publish("b", "two");
    auto first = sub.receive_for(5s);
    auto second = sub.receive_for(5s);
    ASSERT_TRUE(first && second);
    EXPECT_EQ(first->message(), "one");
    EXPECT_EQ(second->message(), "two");
    EXPECT_EQ(sub.receive_for(10ms), std::nullopt);
}

TEST(blocking_broadcast, delivers_to_callbacks) {
    blocking_broadcast bc("memory://");
    bc.connect();
    std::mutex mutex;
    std::condition_variable arrived;
    std::vector<std::string> got;
    auto handle = bc.subscribe_callback("c", [&](const event& ev) {
        std::lock_guard lock(mutex);
        got.push_back(std::string(ev.message()));
        arrived.notify_all();
    });
    for (int i = 0; i < 10; ++i) {
        bc.publish("c", std::to_string(i));
    }
    std::unique_lock lock(mutex);
    ASSERT_TRUE(arrived.wait_for(lock, 5s, [&] { return got.size() == 10; }));
    for (int i = 0; i < 10; ++i) {
        EXPECT_EQ(got[i], std::to_string(i));
    }
}

TEST(blocking_broadcast, throws_clear_errors) {
    EXPECT_THROW(blocking_broadcast("nope://x"), boost::system::system_error);
    blocking_broadcast bc("memory://");
    try {
        bc.publish("c", "before connect");
        FAIL() << "publishing before connecting must fail";
    } catch (const boost::system::system_error& e) {
        EXPECT_EQ(e.code(), error::not_connected);
    }
}

TEST(blocking_broadcast, subscribers_end_when_it_disconnects) {
    blocking_broadcast bc("memory://");
    bc.connect();
    auto sub = bc.subscribe("c");
    bc.disconnect();
    EXPECT_EQ(sub.receive_for(5s), std::nullopt);
    EXPECT_EQ(sub.error(), error::end_of_stream);
    EXPECT_FALSE(sub.is_open());
}

}  // namespace
}  // namespace broadcaster
