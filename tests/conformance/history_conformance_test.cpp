// The history conformance suite: positions, `since`, `last`, async_history and trimmed
// gaps, for every backend that keeps history (history_cases()).

#include "history_cases.hpp"
#include "history_position.hpp"
#include "test_support.hpp"

#include <boost/asio/as_tuple.hpp>

namespace broadcaster::test {
namespace {

using asio::use_awaitable;
using boost::system::error_code;

class history_conformance : public ::testing::TestWithParam<history_case> {
  protected:
    std::string url() const { return GetParam().url(); }
};

asio::awaitable<broadcast> connected(asio::io_context& io, const std::string& url) {
    broadcast bc(io, url);
    co_await bc.async_connect(use_awaitable);
    co_return bc;
}

bool before(std::string_view a, std::string_view b) {
    const auto x = detail::parse_numeric_position(a);
    const auto y = detail::parse_numeric_position(b);
    if (!x || !y) {
        throw std::runtime_error("not a numeric position: " + std::string(a) + ", " +
                                 std::string(b));
    }
    return *x < *y;
}

subscribe_options with_since(std::string position) {
    subscribe_options options;
    options.since = std::move(position);
    return options;
}

subscribe_options with_last(std::size_t n) {
    subscribe_options options;
    options.last = n;
    return options;
}

// Receives `count` events and returns their messages, space-separated.
asio::awaitable<std::string> messages(subscriber& sub, int count) {
    std::string out;
    for (int i = 0; i < count; ++i) {
        out += (out.empty() ? "" : " ") + std::string((co_await receive(sub)).message());
    }
    co_return out;
}

TEST_P(history_conformance, positions_increase_in_publish_order) {
    run_async_test([&](asio::io_context& io) -> asio::awaitable<void> {
        auto bc = co_await connected(io, url());
        const auto channel = unique_name("pos");
        auto sub = co_await bc.async_subscribe(channel, use_awaitable);
        co_await publish_numbered(bc, channel, 50);
        std::string last;
        for (int i = 0; i < 50; ++i) {
            const auto ev = co_await receive(sub);
            BROADCASTER_REQUIRE(ev.message() == std::to_string(i));
            BROADCASTER_REQUIRE(!ev.position().empty());
            BROADCASTER_REQUIRE(last.empty() || before(last, ev.position()));
            last = ev.position();
        }
    });
}

TEST_P(history_conformance, history_gives_the_most_recent_oldest_first_with_their_positions) {
    run_async_test([&](asio::io_context& io) -> asio::awaitable<void> {
        auto bc = co_await connected(io, url());
        const auto channel = unique_name("recent");
        EXPECT_TRUE((co_await bc.async_history(channel, 5, use_awaitable)).empty());
        auto sub = co_await bc.async_subscribe(channel, use_awaitable);
        co_await publish_numbered(bc, channel, 10);
        std::vector<event> live;
        for (int i = 0; i < 10; ++i) {
            live.push_back(co_await receive(sub));
        }
        const auto recent = co_await bc.async_history(channel, 3, use_awaitable);
        BROADCASTER_REQUIRE(recent.size() == 3);
        for (int i = 0; i < 3; ++i) {
            EXPECT_EQ(recent[i].channel(), channel);
            EXPECT_EQ(recent[i].message(), live[7 + i].message());
            EXPECT_EQ(recent[i].position(), live[7 + i].position());
        }
        EXPECT_EQ((co_await bc.async_history(channel, 0, use_awaitable)).size(), 10u);
    });
}

TEST_P(history_conformance, since_resumes_after_the_position_then_goes_live) {
    run_async_test([&](asio::io_context& io) -> asio::awaitable<void> {
        auto bc = co_await connected(io, url());
        const auto channel = unique_name("since");
        auto first = co_await bc.async_subscribe(channel, use_awaitable);
        co_await publish_numbered(bc, channel, 5);
        std::vector<event> seen;
        for (int i = 0; i < 5; ++i) {
            seen.push_back(co_await receive(first));
        }
        auto resumed = co_await bc.async_subscribe(
            channel, with_since(std::string(seen[1].position())), use_awaitable);
        co_await bc.async_publish(channel, "5", use_awaitable);
        EXPECT_EQ(co_await messages(resumed, 4), "2 3 4 5");
        EXPECT_FALSE(resumed.try_receive());
        // From the newest position: nothing old, only what follows.
        auto at_end = co_await bc.async_subscribe(
            channel, with_since(std::string(seen[4].position())), use_awaitable);
        co_await bc.async_publish(channel, "6", use_awaitable);
        EXPECT_EQ(co_await messages(at_end, 2), "5 6");
        EXPECT_EQ(co_await messages(resumed, 1), "6");
    });
}

// `since` with `last`: a bound on what is replayed (and read from the broker).
TEST_P(history_conformance, since_with_last_replays_at_most_last_else_reports_a_gap) {
    run_async_test([&](asio::io_context& io) -> asio::awaitable<void> {
        auto bc = co_await connected(io, url());
        const auto channel = unique_name("bound");
        auto first = co_await bc.async_subscribe(channel, use_awaitable);
        co_await publish_numbered(bc, channel, 10);
        std::vector<event> seen;
        for (int i = 0; i < 10; ++i) {
            seen.push_back(co_await receive(first));
        }
        auto bounded = [&](std::size_t i) {
            auto options = with_since(std::string(seen[i].position()));
            options.last = 3;
            return options;
        };
        // Eight after the position: more than three.
        auto [ec, far] =
            co_await bc.async_subscribe(channel, bounded(1), asio::as_tuple(use_awaitable));
        EXPECT_EQ(ec, error::history_gap);
        // Exactly three after it: all of them, then live ones.
        auto near = co_await bc.async_subscribe(channel, bounded(6), use_awaitable);
        co_await bc.async_publish(channel, "10", use_awaitable);
        EXPECT_EQ(co_await messages(near, 4), "7 8 9 10");
        EXPECT_FALSE(near.try_receive());
    });
}

TEST_P(history_conformance, last_gives_the_most_recent_then_live) {
    run_async_test([&](asio::io_context& io) -> asio::awaitable<void> {
        auto bc = co_await connected(io, url());
        const auto channel = unique_name("last");
        co_await publish_numbered(bc, channel, 5);
        auto sub = co_await bc.async_subscribe(channel, with_last(3), use_awaitable);
        co_await bc.async_publish(channel, "5", use_awaitable);
        EXPECT_EQ(co_await messages(sub, 4), "2 3 4 5");
        EXPECT_FALSE(sub.try_receive());
        auto more_than_kept = co_await bc.async_subscribe(channel, with_last(50), use_awaitable);
        EXPECT_EQ(co_await messages(more_than_kept, 6), "0 1 2 3 4 5");
    });
}

// The seam under real concurrency: a subscribe with `since` while the channel is busy
// gets every later message once, in order.
TEST_P(history_conformance, since_while_publishing_has_no_gap_and_no_duplicate) {
    run_async_test([&](asio::io_context& io) -> asio::awaitable<void> {
        auto bc = co_await connected(io, url());
        const auto channel = unique_name("busy");
        constexpr int count = 400;
        auto witness =
            co_await bc.async_subscribe(channel, subscribe_options{count * 2}, use_awaitable);
        int acknowledged = 0;
        for (int i = 0; i < count; ++i) {
            bc.async_publish(channel, std::to_string(i), [&](error_code ec) {
                EXPECT_FALSE(ec) << ec.message();
                ++acknowledged;
            });
        }
        // Resume after message 10 while the rest is still on its way.
        std::string position;
        for (int i = 0; i <= 10; ++i) {
            position = (co_await receive(witness)).position();
        }
        auto options = with_since(position);
        options.capacity = count * 2;
        auto resumed = co_await bc.async_subscribe(channel, options, use_awaitable);
        for (int i = 11; i < count; ++i) {
            const auto ev = co_await receive(resumed);
            BROADCASTER_REQUIRE(ev.message() == std::to_string(i));
        }
        co_await eventually([&] { return acknowledged == count; });
        EXPECT_FALSE(resumed.try_receive());
        EXPECT_EQ(resumed.dropped(), 0u);
    });
}

TEST_P(history_conformance, a_trimmed_position_is_a_gap_not_a_silent_skip) {
    if (GetParam().trims_after == 0) {
        GTEST_SKIP() << "no number of events is sure to make this broker trim";
    }
    run_async_test([&](asio::io_context& io) -> asio::awaitable<void> {
        auto bc = co_await connected(io, url());
        const auto channel = unique_name("trim");
        auto sub = co_await bc.async_subscribe(channel, use_awaitable);
        co_await bc.async_publish(channel, "first", use_awaitable);
        const auto first = co_await receive(sub);
        if (GetParam().trim_payload_bytes > 1) {
            const std::string filler(GetParam().trim_payload_bytes, 'x');
            for (int i = 0; i < GetParam().trims_after; ++i) {
                co_await bc.async_publish(channel, filler, use_awaitable);
            }
        } else {
            co_await publish_numbered(bc, channel, GetParam().trims_after);
        }
        auto [ec, resumed] = co_await bc.async_subscribe(
            channel, with_since(std::string(first.position())), asio::as_tuple(use_awaitable));
        EXPECT_EQ(ec, error::history_gap);
        // What is kept can still be had.
        EXPECT_FALSE((co_await bc.async_history(channel, 1, use_awaitable)).empty());
    });
}

TEST_P(history_conformance, refuses_a_position_it_cannot_have_given) {
    run_async_test([&](asio::io_context& io) -> asio::awaitable<void> {
        auto bc = co_await connected(io, url());
        const auto channel = unique_name("bad");
        auto [ec, sub] = co_await bc.async_subscribe(channel, with_since("not a position"),
                                                     asio::as_tuple(use_awaitable));
        EXPECT_EQ(ec, error::invalid_position);
        co_await eventually([&] { return bc.stats().active_channels == 0; });
    });
}

INSTANTIATE_TEST_SUITE_P(backends, history_conformance, ::testing::ValuesIn(history_cases()),
                         [](const auto& info) { return info.param.name; });

}  // namespace
}  // namespace broadcaster::test
