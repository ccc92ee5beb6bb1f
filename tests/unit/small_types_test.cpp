#include "event_ring.hpp"

#include <broadcaster/channel_list.hpp>
#include <broadcaster/error.hpp>
#include <broadcaster/event.hpp>
#include <broadcaster/options.hpp>

#include <gtest/gtest.h>

namespace broadcaster {
namespace {

TEST(error, has_a_category_and_messages) {
    const boost::system::error_code ec = error::subscriber_overflow;
    EXPECT_STREQ(ec.category().name(), "broadcaster");
    EXPECT_EQ(ec.message(), "subscriber queue overflowed");
    EXPECT_NE(make_error_code(error::end_of_stream).message(),
              make_error_code(error::not_connected).message());
    EXPECT_THROW(throw_if_error(error::timeout, "publish"), boost::system::system_error);
    EXPECT_NO_THROW(throw_if_error({}, "publish"));
}

TEST(event, shares_its_data_between_copies) {
    const event ev("ch", std::string("a\0b", 3));
    const event copy = ev;
    EXPECT_EQ(copy.channel(), "ch");
    EXPECT_EQ(copy.message(), std::string_view("a\0b", 3));
    EXPECT_EQ(copy.message().data(), ev.message().data());
    EXPECT_FALSE(event());
    EXPECT_TRUE(ev);
}

TEST(channel_list, accepts_one_or_several_names_without_duplicates) {
    EXPECT_EQ(channel_list("a").names(), std::vector<std::string>{"a"});
    EXPECT_EQ(channel_list({"a", "b", "a"}).names(), (std::vector<std::string>{"a", "b"}));
    EXPECT_EQ(channel_list(std::vector<std::string>{"x", "x", "y", "x"}).names(),
              (std::vector<std::string>{"x", "y"}));
}

TEST(connection_state, has_names) {
    EXPECT_EQ(to_string(connection_state::reconnecting), "reconnecting");
    EXPECT_EQ(to_string(connection_state::connected), "connected");
}

TEST(event_ring, is_a_fifo_across_growth_and_wrap_around) {
    detail::event_ring ring;
    int next_in = 0;
    int next_out = 0;
    for (int round = 0; round < 50; ++round) {
        for (int i = 0; i < round % 7 + 1; ++i) {
            ring.push_back(event("c", std::to_string(next_in++)));
        }
        for (int i = 0; i < round % 5 && !ring.empty(); ++i) {
            ASSERT_EQ(ring.pop_front().message(), std::to_string(next_out++));
        }
    }
    while (!ring.empty()) {
        ASSERT_EQ(ring.pop_front().message(), std::to_string(next_out++));
    }
    EXPECT_EQ(next_in, next_out);
    ring.shrink_if_idle();
    EXPECT_EQ(ring.size(), 0u);
}

}  // namespace
}  // namespace broadcaster
