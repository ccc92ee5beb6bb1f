// History in the core: the seam between a subscriber's history and its live events
// (history_seam, driven directly), and the core around it, against a scripted backend
// whose history answer the test releases when it chooses, so live events can be made
// to arrive while the history is fetched.

#include "completion.hpp"
#include "history_seam.hpp"
#include "test_support.hpp"

#include <broadcaster/backend.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/post.hpp>

#include <deque>

namespace broadcaster::test {
namespace {

using asio::use_awaitable;
using boost::system::error_code;
using detail::history_seam;

event at(std::uint64_t position, const std::string& channel = "c") {
    return event(channel, "m" + std::to_string(position), std::to_string(position) + "-0");
}

std::vector<event> range(std::uint64_t from, std::uint64_t to) {
    std::vector<event> out;
    for (auto i = from; i <= to; ++i) {
        out.push_back(at(i));
    }
    return out;
}

std::string positions(const std::vector<event>& events) {
    std::string out;
    for (const auto& ev : events) {
        out += (out.empty() ? "" : " ") + std::string(ev.position());
    }
    return out;
}

history_seam::order numeric_order() {
    struct order_only final : backend {
        void async_connect(completion_handler) override {}
        void async_disconnect(completion_handler) override {}
        void async_subscribe(std::string, completion_handler) override {}
        void async_unsubscribe(std::string, completion_handler) override {}
        void async_publish(std::string, std::string, completion_handler) override {}
    };
    auto b = std::make_shared<order_only>();
    return [b](std::string_view x, std::string_view y) { return b->position_before(x, y); };
}

history_seam make_seam(std::optional<std::string> after = {}, std::size_t limit = 100,
                       overflow_policy policy = overflow_policy::drop_oldest) {
    return history_seam(std::move(after), limit, policy, numeric_order());
}

// ---- the seam alone ---------------------------------------------------------------

TEST(history_seam, history_then_the_held_events_after_it_without_duplicates) {
    auto seam = make_seam();
    for (auto& ev : range(4, 7)) {  // live, while the history (1..5) was fetched
        seam.hold(ev);
    }
    EXPECT_EQ(positions(seam.join(range(1, 5))), "1-0 2-0 3-0 4-0 5-0 6-0 7-0");
}

TEST(history_seam, after_the_join_admits_only_what_follows_the_history) {
    auto seam = make_seam();
    EXPECT_EQ(positions(seam.join(range(1, 5))), "1-0 2-0 3-0 4-0 5-0");
    EXPECT_TRUE(seam.joined());
    EXPECT_FALSE(seam.done_at_join());
    // A live stream lagging the history: 4 and 5 come again, then 6 is new.
    EXPECT_FALSE(seam.admit(at(4)));
    EXPECT_FALSE(seam.admit(at(5)));
    EXPECT_TRUE(seam.admit(at(6)));
}

TEST(history_seam, an_empty_join_without_since_is_done_at_once) {
    auto seam = make_seam();
    EXPECT_TRUE(seam.join({}).empty());
    EXPECT_TRUE(seam.done_at_join());
    EXPECT_TRUE(seam.admit(at(1)));
}

TEST(history_seam, nothing_after_since_is_lost_or_repeated) {
    auto seam = make_seam("3-0");
    seam.hold(at(5));
    seam.hold(at(6));
    // A backend answering inclusively still gives no duplicate of `since`.
    EXPECT_EQ(positions(seam.join(range(3, 5))), "4-0 5-0 6-0");
}

TEST(history_seam, empty_history_passes_every_held_event) {
    auto seam = make_seam();
    seam.hold(at(1));
    seam.hold(at(2));
    EXPECT_EQ(positions(seam.join({})), "1-0 2-0");
}

TEST(history_seam, orders_positions_as_numbers_not_text) {
    auto seam = make_seam();
    seam.hold(event("c", "x", "10-0"));
    seam.hold(event("c", "y", "1700000000000-12"));
    // "9-5" < "10-0" < "1700000000000-2" < "...-12": textually "9" sorts after "10".
    std::vector<event> history{event("c", "a", "9-5"), event("c", "b", "10-0")};
    EXPECT_EQ(positions(seam.join(std::move(history))), "9-5 10-0 1700000000000-12");
}

TEST(history_seam, holds_at_most_its_limit_dropping_the_oldest) {
    auto seam = make_seam({}, 2);
    for (auto& ev : range(10, 13)) {
        seam.hold(ev);
    }
    EXPECT_EQ(seam.dropped(), 2u);
    EXPECT_EQ(positions(seam.join(range(1, 2))), "1-0 2-0 12-0 13-0");
}

TEST(history_seam, holds_at_most_its_limit_dropping_the_newest) {
    auto seam = make_seam({}, 2, overflow_policy::drop_newest);
    for (auto& ev : range(10, 13)) {
        seam.hold(ev);
    }
    EXPECT_EQ(seam.dropped(), 2u);
    EXPECT_FALSE(seam.overflowed());
    EXPECT_EQ(positions(seam.join({})), "10-0 11-0");
}

TEST(history_seam, reports_overflow_under_the_close_policy) {
    auto seam = make_seam({}, 1, overflow_policy::close);
    seam.hold(at(1));
    EXPECT_FALSE(seam.overflowed());
    seam.hold(at(2));
    EXPECT_TRUE(seam.overflowed());
    EXPECT_EQ(positions(seam.join({})), "1-0");
}

// ---- the core, against a scripted backend -------------------------------------------

// What the scripted backend was asked, and its pending history answers.
struct script {
    std::deque<std::pair<std::string, history_query>> queries;
    std::deque<backend::history_handler> pending;
    int unsubscribes = 0;
    class scripted_history_backend* broker = nullptr;
};

class scripted_history_backend final : public backend {
  public:
    explicit scripted_history_backend(script& s) : script_(s) { s.broker = this; }
    ~scripted_history_backend() override { script_.broker = nullptr; }

    void async_connect(completion_handler h) override { done(std::move(h)); }
    void async_disconnect(completion_handler h) override { done(std::move(h)); }
    void async_subscribe(std::string, completion_handler h) override { done(std::move(h)); }
    void async_unsubscribe(std::string, completion_handler h) override {
        ++script_.unsubscribes;
        done(std::move(h));
    }
    void async_publish(std::string, std::string, completion_handler h) override {
        done(std::move(h));
    }
    void async_history(std::string channel, history_query query, history_handler handler) override {
        script_.queries.emplace_back(std::move(channel), std::move(query));
        script_.pending.push_back(std::move(handler));
    }

    // A live event from the broker.
    void live(event ev) {
        boost::asio::post(executor(), [this, ev] { sink().deliver(ev); });
    }
    void gap(std::string channel) {
        boost::asio::post(executor(), [this, channel] { sink().history_gap(channel); });
    }
    void refuse(std::string channel, std::string reason) {
        boost::asio::post(
            executor(), [this, channel, reason] { sink().subscription_refused(channel, reason); });
    }
    // Answers the oldest pending history request.
    void answer(error_code ec, std::vector<event> events) {
        auto handler = std::move(script_.pending.front());
        script_.pending.pop_front();
        detail::post_completion(std::move(handler), executor(), ec, std::move(events));
    }

  private:
    void done(completion_handler h) {
        detail::post_completion(std::move(h), executor(), error_code());
    }
    script& script_;
};

// Runs queued work until `condition` holds (bounded): the order is the test's.
template <typename Condition>
void run_until(asio::io_context& io, Condition condition) {
    for (int i = 0; i < 10'000 && !condition(); ++i) {
        io.restart();
        io.poll();
    }
    ASSERT_TRUE(condition());
}

struct history_fixture : ::testing::Test {
    asio::io_context io;
    script s;
    broadcast bc{io.get_executor(), std::make_unique<scripted_history_backend>(s)};

    void SetUp() override {
        bool connected = false;
        bc.async_connect([&](error_code ec) { connected = !ec; });
        run_until(io, [&] { return connected; });
    }

    // Starts a subscribe; `result` is set when it completes.
    struct outcome {
        bool done = false;
        error_code ec;
        subscriber sub;
    };
    std::shared_ptr<outcome> subscribe(channel_list channels, subscribe_options options) {
        auto out = std::make_shared<outcome>();
        bc.async_subscribe(std::move(channels), options, [out](error_code ec, subscriber sub) {
            out->done = true;
            out->ec = ec;
            out->sub = std::move(sub);
        });
        return out;
    }

    std::string drain(subscriber& sub) {
        std::string out;
        while (auto ev = sub.try_receive()) {
            out += (out.empty() ? "" : " ") + std::string(ev->position());
        }
        return out;
    }
};

TEST_F(history_fixture, live_events_during_the_fetch_join_the_history_without_gap_or_duplicate) {
    subscribe_options options;
    options.last = 3;
    auto result = subscribe("c", options);
    run_until(io, [&] { return !s.pending.empty(); });
    EXPECT_FALSE(result->done);  // not before its history is queued
    EXPECT_EQ(s.queries.front().second.limit, 3u);
    EXPECT_FALSE(s.queries.front().second.after);
    // Published after the confirmation: live, and partly in the history too.
    for (auto& ev : range(4, 6)) {
        s.broker->live(ev);
    }
    io.restart();
    io.poll();
    s.broker->answer({}, range(3, 5));
    run_until(io, [&] { return result->done; });
    ASSERT_FALSE(result->ec) << result->ec.message();
    EXPECT_EQ(drain(result->sub), "3-0 4-0 5-0 6-0");
    s.broker->live(at(7));
    io.restart();
    io.poll();
    EXPECT_EQ(drain(result->sub), "7-0");
    EXPECT_EQ(bc.stats().delivered, 5u);
}

// The live stream lags the history fetch (a shared reader that has not delivered yet
// what the fetch saw): the events the history gave come live after the join, and
// are not queued twice.
TEST_F(history_fixture, live_events_that_lag_the_history_are_not_delivered_twice) {
    subscribe_options options;
    options.since = "2-0";
    auto result = subscribe("c", options);
    run_until(io, [&] { return !s.pending.empty(); });
    s.broker->answer({}, range(3, 6));
    run_until(io, [&] { return result->done; });
    ASSERT_FALSE(result->ec) << result->ec.message();
    EXPECT_EQ(drain(result->sub), "3-0 4-0 5-0 6-0");
    for (auto& ev : range(3, 8)) {
        s.broker->live(ev);
    }
    io.restart();
    io.poll();
    EXPECT_EQ(drain(result->sub), "7-0 8-0");
    s.broker->live(at(9));
    io.restart();
    io.poll();
    EXPECT_EQ(drain(result->sub), "9-0");
}

TEST_F(history_fixture, since_asks_for_what_follows_the_position) {
    subscribe_options options;
    options.since = "41-0";
    auto result = subscribe("c", options);
    run_until(io, [&] { return !s.pending.empty(); });
    EXPECT_EQ(s.queries.front().second.after, std::optional<std::string>("41-0"));
    EXPECT_EQ(s.queries.front().second.limit, 0u);
    s.broker->answer({}, range(42, 43));
    run_until(io, [&] { return result->done; });
    EXPECT_EQ(drain(result->sub), "42-0 43-0");
}

TEST_F(history_fixture, a_subscriber_without_history_is_not_held_back) {
    subscribe_options options;
    options.last = 2;
    auto catching_up = subscribe("c", options);
    auto live_only = subscribe("c", {});
    run_until(io, [&] { return live_only->done && !s.pending.empty(); });
    s.broker->live(at(9));
    io.restart();
    io.poll();
    EXPECT_EQ(drain(live_only->sub), "9-0");
    s.broker->answer({}, range(7, 8));
    run_until(io, [&] { return catching_up->done; });
    EXPECT_EQ(drain(catching_up->sub), "7-0 8-0 9-0");
}

TEST_F(history_fixture, a_history_error_fails_the_subscribe_and_releases_the_channel) {
    subscribe_options options;
    options.since = "1-0";
    auto result = subscribe("c", options);
    run_until(io, [&] { return !s.pending.empty(); });
    s.broker->answer(error::history_gap, {});
    run_until(io, [&] { return result->done && s.unsubscribes == 1; });
    EXPECT_EQ(result->ec, error::history_gap);
    EXPECT_EQ(bc.stats().active_subscribers, 0u);
    EXPECT_EQ(bc.stats().active_channels, 0u);
}

// Cancelled while its history is fetched: it completes once, at once, with
// operation_aborted; the history that comes later is dropped. (The late answer used
// to complete the moved-from handler a second time: a crash.)
TEST_F(history_fixture, a_subscribe_cancelled_while_its_history_is_fetched_completes_once) {
    subscribe_options options;
    options.last = 3;
    asio::cancellation_signal cancel;
    int calls = 0;
    error_code result;
    bc.async_subscribe("c", options,
                       asio::bind_cancellation_slot(cancel.slot(), [&](error_code ec, subscriber) {
                           ++calls;
                           result = ec;
                       }));
    run_until(io, [&] { return !s.pending.empty(); });
    cancel.emit(asio::cancellation_type::terminal);
    run_until(io, [&] { return calls == 1 && s.unsubscribes == 1; });
    EXPECT_EQ(result, asio::error::operation_aborted);
    s.broker->answer({}, range(1, 3));
    io.restart();
    io.poll();
    EXPECT_EQ(calls, 1);
    EXPECT_EQ(bc.stats().active_subscribers, 0u);
    EXPECT_EQ(bc.stats().active_channels, 0u);
}

TEST_F(history_fixture, since_on_two_channels_or_with_a_pattern_is_refused) {
    subscribe_options since;
    since.since = "1";
    auto a = subscribe(std::vector<std::string>{"c", "d"}, since);
    subscribe_options on_pattern = since;
    on_pattern.pattern = true;
    auto b = subscribe("c.*", on_pattern);
    run_until(io, [&] { return a->done && b->done; });
    EXPECT_EQ(a->ec, boost::system::errc::invalid_argument);
    EXPECT_EQ(b->ec, boost::system::errc::invalid_argument);
    EXPECT_TRUE(s.queries.empty());
    EXPECT_EQ(bc.stats().active_channels, 0u);
}

// `since` with `last`: the backend is asked for the most recent last + 1 after the
// position; getting that many means more than `last` followed it: a gap.
TEST_F(history_fixture, since_with_last_asks_for_one_more_and_more_is_a_gap) {
    subscribe_options bounded;
    bounded.since = "1-0";
    bounded.last = 2;
    auto far = subscribe("c", bounded);
    run_until(io, [&] { return !s.pending.empty(); });
    EXPECT_EQ(s.queries.front().second.after, std::optional<std::string>("1-0"));
    EXPECT_EQ(s.queries.front().second.limit, 3u);
    s.broker->answer({}, range(3, 5));
    run_until(io, [&] { return far->done; });
    EXPECT_EQ(far->ec, error::history_gap);

    auto near = subscribe("c", bounded);
    run_until(io, [&] { return !s.pending.empty(); });
    s.broker->answer({}, range(2, 3));
    run_until(io, [&] { return near->done; });
    ASSERT_FALSE(near->ec);
    EXPECT_EQ(near->sub.try_receive()->position(), "2-0");
    EXPECT_EQ(near->sub.try_receive()->position(), "3-0");
}

TEST_F(history_fixture, a_gap_ends_the_subscribers_after_what_they_have) {
    auto result = subscribe("c", {});
    run_until(io, [&] { return result->done; });
    s.broker->live(at(1));
    s.broker->gap("c");
    s.broker->live(at(5));  // after the gap: not for the ended subscriber
    io.restart();
    io.poll();
    auto& sub = result->sub;
    EXPECT_EQ(sub.try_receive()->position(), "1-0");
    EXPECT_FALSE(sub.try_receive());
    EXPECT_EQ(sub.error(), error::history_gap);
    run_until(io, [&] { return s.unsubscribes == 1; });
}

// What the backend says about a refusal reaches the app in error_message(), once the
// subscriber has handed out what it had.
TEST_F(history_fixture, a_refusal_ends_the_subscribers_with_the_backends_reason) {
    auto result = subscribe("c", {});
    run_until(io, [&] { return result->done; });
    s.broker->live(at(1));
    s.broker->refuse("c", "XINFO STREAM refused: NOPERM");
    io.restart();
    io.poll();
    auto& sub = result->sub;
    EXPECT_EQ(sub.error_message(), "");
    EXPECT_EQ(sub.try_receive()->position(), "1-0");
    EXPECT_EQ(sub.error(), error::subscription_refused);
    EXPECT_EQ(sub.error_message(),
              error_code(error::subscription_refused).message() + ": XINFO STREAM refused: NOPERM");
    run_until(io, [&] { return s.unsubscribes == 1; });
}

TEST(history_default, a_backend_without_history_says_so) {
    run_async_test([&](asio::io_context& io) -> asio::awaitable<void> {
        broadcast bc(io, "memory://");
        co_await bc.async_connect(asio::use_awaitable);
        auto [ec, events] = co_await bc.async_history("c", 10, asio::as_tuple(asio::use_awaitable));
        EXPECT_EQ(ec, error::history_not_supported);
        EXPECT_TRUE(events.empty());
        subscribe_options options;
        options.last = 1;
        auto [sub_ec, sub] =
            co_await bc.async_subscribe("c", options, asio::as_tuple(asio::use_awaitable));
        EXPECT_EQ(sub_ec, error::history_not_supported);
        co_await eventually([&] { return bc.stats().active_channels == 0; });
    });
}

// memory://?history=N numbers events under the hub's lock: with two publishers on a
// multi-threaded io_context, a subscriber still gets them in position order. (The
// publisher's own events used to be delivered at once, overtaking earlier-numbered
// ones from the other publisher still queued for it.)
TEST(memory_history, two_publishers_on_two_threads_deliver_in_position_order) {
    run_async_test(
        [&](asio::io_context& io) -> asio::awaitable<void> {
            const auto hub = "memory://" + unique_name("order") + "?history=10000";
            broadcast a(io, hub);
            broadcast b(io, hub);
            co_await a.async_connect(use_awaitable);
            co_await b.async_connect(use_awaitable);
            constexpr int count = 3000;
            auto sub =
                co_await b.async_subscribe("ch", subscribe_options{2 * count + 1}, use_awaitable);
            std::atomic<int> acknowledged{0};
            for (int i = 0; i < count; ++i) {
                a.async_publish("ch", "a", [&](error_code) { ++acknowledged; });
                b.async_publish("ch", "b", [&](error_code) { ++acknowledged; });
            }
            co_await eventually([&] { return acknowledged == 2 * count; }, 20s);
            co_await a.async_publish("ch", "end", use_awaitable);
            std::uint64_t last = 0;
            int out_of_order = 0;
            int received = 0;
            for (;;) {
                const auto ev = co_await receive(sub);
                const std::uint64_t position = std::stoull(std::string(ev.position()));
                out_of_order += position <= last ? 1 : 0;
                last = std::max(last, position);
                ++received;
                if (ev.message() == "end") {
                    break;
                }
            }
            EXPECT_EQ(out_of_order, 0);
            EXPECT_EQ(received, 2 * count + 1);
        },
        60s, 2);
}

}  // namespace
}  // namespace broadcaster::test
