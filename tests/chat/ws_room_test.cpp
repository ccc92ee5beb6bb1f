// The room's fan-out (room.hpp) on a real memory:// broadcast: what a seat receives and
// when, its bounds, seats leaving during a fan-out, and the room's subscription ending
// and coming back.

#include "room.hpp"

#include "chat_server.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <gtest/gtest.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace chat {
namespace {

namespace asio = boost::asio;
using boost::system::error_code;

// Records what the fan-out gives it; `then` runs after each, inside the fan-out.
struct recording_listener : room_seat::listener {
    std::vector<std::string> messages;
    std::vector<error_code> errors;
    int seated = 0;
    std::function<void()> then;

    void on_room_seated() override { ++seated; }

    void on_room_message(error_code ec, broadcaster::event ev) override {
        if (ec) {
            errors.push_back(ec);
        } else {
            messages.emplace_back(ev.message());
        }
        if (then) {
            then();
        }
    }
};

class chat_room : public ::testing::Test {
  protected:
    explicit chat_room(const std::string& url = "memory://") : broadcast_(io_, url) {
        run([&]() -> asio::awaitable<void> {
            co_await broadcast_.async_connect(asio::use_awaitable);
        });
    }

    // Runs `body` to its end on the io_context, then whatever became ready meanwhile
    // (the room's pending receive keeps the io_context from running out of work).
    template <typename Body>
    void run(Body body) {
        bool done = false;
        asio::co_spawn(
            io_,
            [&]() -> asio::awaitable<void> {
                co_await body();
                done = true;
            },
            [](std::exception_ptr e) {
                if (e) {
                    std::rethrow_exception(e);
                }
            });
        io_.restart();
        while (!done && io_.run_one() > 0) {
        }
        ASSERT_TRUE(done);
        settle();
    }

    void settle() {
        io_.restart();  // out of work, the io_context stopped
        while (io_.poll() > 0) {
        }
    }

    void join(room& r, room_seat& seat) {
        error_code joined = asio::error::would_block;
        run([&]() -> asio::awaitable<void> { joined = co_await r.join(seat); });
        ASSERT_FALSE(joined) << joined.message();
    }

    void publish(const std::string& message) {
        run([&]() -> asio::awaitable<void> {
            co_await broadcast_.async_publish(room_channel, message, asio::use_awaitable);
        });
    }

    std::shared_ptr<room> make_room(std::size_t max_messages = 1000,
                                    std::size_t max_bytes = 1 << 20) {
        return std::make_shared<room>(broadcast_, max_messages, max_bytes);
    }

    asio::io_context io_;
    broadcaster::broadcast broadcast_;
};

std::vector<std::string> take_all(room_seat& seat) {
    std::vector<std::string> taken;
    while (auto ev = seat.try_receive()) {
        taken.emplace_back(ev->message());
    }
    return taken;
}

TEST_F(chat_room, a_seat_queues_until_its_writer_waits_then_gets_each_message_at_once) {
    const auto r = make_room();
    room_seat seat(100, 1 << 20);
    join(*r, seat);
    publish("one");
    publish("two");
    EXPECT_EQ(seat.queued(), 2u);
    EXPECT_EQ(take_all(seat), (std::vector<std::string>{"one", "two"}));

    const auto writer = std::make_shared<recording_listener>();
    seat.wait(writer);
    publish("three");
    EXPECT_EQ(writer->messages, (std::vector<std::string>{"three"}));
    EXPECT_EQ(seat.queued(), 0u);
    publish("four");  // the writer did not wait again: queued
    EXPECT_EQ(writer->messages.size(), 1u);
    EXPECT_EQ(take_all(seat), (std::vector<std::string>{"four"}));
}

TEST_F(chat_room, every_seat_gets_every_message_in_order) {
    const auto r = make_room();
    std::vector<std::unique_ptr<room_seat>> seats;
    for (int i = 0; i < 5; ++i) {
        seats.push_back(std::make_unique<room_seat>(1000, 1 << 20));
        join(*r, *seats.back());
    }
    std::vector<std::string> sent;
    for (int i = 0; i < 300; ++i) {
        sent.push_back("m" + std::to_string(i));
        publish(sent.back());
    }
    for (auto& seat : seats) {
        EXPECT_EQ(take_all(*seat), sent);
    }
}

// Joins that arrive while the room subscribes wait for that one subscribe; every one
// of them is in the room once it completes.
TEST_F(chat_room, joins_during_the_first_subscribe_share_it_and_all_receive) {
    const auto r = make_room();
    std::vector<std::unique_ptr<room_seat>> seats;
    int joined = 0;
    for (int i = 0; i < 4; ++i) {
        seats.push_back(std::make_unique<room_seat>(100, 1 << 20));
        asio::co_spawn(
            io_,
            [&, seat = seats.back().get()]() -> asio::awaitable<void> {
                const auto ec = co_await r->join(*seat);
                EXPECT_FALSE(ec) << ec.message();
                ++joined;
            },
            asio::detached);
    }
    io_.restart();
    while (joined < 4 && io_.run_one() > 0) {
    }
    settle();
    ASSERT_EQ(joined, 4);
    EXPECT_EQ(broadcast_.stats().active_subscribers, 1u);
    publish("all of you");
    for (auto& seat : seats) {
        EXPECT_EQ(take_all(*seat), (std::vector<std::string>{"all of you"}));
    }
}

// Over its bound in messages or in bytes, a seat ends with subscriber_overflow after
// what it queued; the others go on.
TEST_F(chat_room, a_seat_over_its_bound_ends_after_its_queue_and_the_others_go_on) {
    const auto r = make_room();
    room_seat by_count(3, 1 << 20);
    room_seat by_bytes(100, 10);
    room_seat roomy(100, 1 << 20);
    join(*r, by_count);
    join(*r, by_bytes);
    join(*r, roomy);
    for (const auto* m : {"aaaa", "bbbb", "cccc", "dddd", "eeee"}) {
        publish(m);
    }
    EXPECT_EQ(by_count.queued(), 3u);
    EXPECT_FALSE(by_count.error());  // what is queued comes first
    EXPECT_EQ(take_all(by_count), (std::vector<std::string>{"aaaa", "bbbb", "cccc"}));
    EXPECT_EQ(by_count.error(), broadcaster::error::subscriber_overflow);
    EXPECT_EQ(take_all(by_bytes), (std::vector<std::string>{"aaaa", "bbbb"}));
    EXPECT_EQ(by_bytes.error(), broadcaster::error::subscriber_overflow);
    EXPECT_EQ(take_all(roomy).size(), 5u);
    EXPECT_FALSE(roomy.error());
    publish("later");
    EXPECT_EQ(take_all(by_count).size(), 0u);
    EXPECT_EQ(take_all(roomy), (std::vector<std::string>{"later"}));
}

// A writer may close its client from inside the fan-out (its seat leaves); the seats
// after it in the room still get the message.
TEST_F(chat_room, a_seat_leaving_inside_the_fan_out_skips_no_other_seat) {
    const auto r = make_room();
    std::vector<std::unique_ptr<room_seat>> seats;
    std::vector<std::shared_ptr<recording_listener>> writers;
    for (int i = 0; i < 6; ++i) {
        seats.push_back(std::make_unique<room_seat>(100, 1 << 20));
        join(*r, *seats.back());
        writers.push_back(std::make_shared<recording_listener>());
        seats.back()->wait(writers.back());
    }
    // Every other writer leaves as it gets the message; the rest wait again.
    for (std::size_t i = 0; i < seats.size(); ++i) {
        writers[i]->then = [&, i] {
            if (i % 2 == 0) {
                EXPECT_EQ(seats[i]->leave(), nullptr);  // not waiting any more
            } else {
                seats[i]->wait(writers[i]);
            }
        };
    }
    publish("first");
    publish("second");
    for (std::size_t i = 0; i < seats.size(); ++i) {
        const auto expected = i % 2 == 0 ? std::vector<std::string>{"first"}
                                         : std::vector<std::string>{"first", "second"};
        EXPECT_EQ(writers[i]->messages, expected) << "seat " << i;
        writers[i]->then = nullptr;  // the cycle writer -> seat ends here
    }
}

// The broadcast disconnects: every seat ends with end_of_stream, a waiting writer at
// once. Connected again, a join subscribes anew and receives.
TEST_F(chat_room, the_rooms_subscription_ending_ends_every_seat_and_a_later_join_subscribes_again) {
    const auto r = make_room();
    room_seat waiting(100, 1 << 20);
    room_seat busy(100, 1 << 20);
    join(*r, waiting);
    join(*r, busy);
    const auto writer = std::make_shared<recording_listener>();
    waiting.wait(writer);
    publish("before");
    waiting.wait(writer);
    run([&]() -> asio::awaitable<void> {
        co_await broadcast_.async_disconnect(asio::use_awaitable);
    });
    ASSERT_EQ(writer->errors.size(), 1u);
    EXPECT_EQ(writer->errors[0], broadcaster::error::end_of_stream);
    EXPECT_EQ(take_all(busy), (std::vector<std::string>{"before"}));
    EXPECT_EQ(busy.error(), broadcaster::error::end_of_stream);

    run([&]() -> asio::awaitable<void> { co_await broadcast_.async_connect(asio::use_awaitable); });
    room_seat later(100, 1 << 20);
    join(*r, later);
    publish("after");
    EXPECT_EQ(take_all(later), (std::vector<std::string>{"after"}));
    EXPECT_EQ(take_all(busy).size(), 0u);
}

// The room's own queue holds what is published between two turns of its fan-out;
// past its bound the seats end, with an error that does not blame the clients.
TEST_F(chat_room, the_room_falling_behind_ends_every_seat_as_the_servers_fault) {
    const auto r = make_room(2);
    room_seat seat(100, 1 << 20);
    join(*r, seat);
    run([&]() -> asio::awaitable<void> {
        for (int i = 0; i < 8; ++i) {  // in one turn: the fan-out cannot run between them
            broadcast_.async_publish(room_channel, "m" + std::to_string(i), asio::detached);
        }
        co_return;
    });
    take_all(seat);
    EXPECT_EQ(seat.error(), boost::system::errc::no_buffer_space);
    EXPECT_NE(seat.error(), broadcaster::error::subscriber_overflow);
}

TEST_F(chat_room, a_join_fails_with_the_subscribes_error_and_the_next_one_retries) {
    const auto r = make_room();
    run([&]() -> asio::awaitable<void> {
        co_await broadcast_.async_disconnect(asio::use_awaitable);
    });
    room_seat refused(100, 1 << 20);
    error_code ec;
    run([&]() -> asio::awaitable<void> { ec = co_await r->join(refused); });
    EXPECT_EQ(ec, broadcaster::error::not_connected);
    run([&]() -> asio::awaitable<void> { co_await broadcast_.async_connect(asio::use_awaitable); });
    room_seat accepted(100, 1 << 20);
    join(*r, accepted);
    publish("in");
    EXPECT_EQ(take_all(accepted), (std::vector<std::string>{"in"}));
}

// The server goes away first: its seats leave without their writers being called, and
// a seat destroyed after the room touches nothing of it.
TEST_F(chat_room, closing_the_room_lets_seats_go_silently) {
    auto r = make_room();
    auto seat = std::make_unique<room_seat>(100, 1 << 20);
    join(*r, *seat);
    const auto writer = std::make_shared<recording_listener>();
    seat->wait(writer);
    r->close();
    EXPECT_EQ(writer.use_count(), 1);  // the seat let go of it, uncalled
    EXPECT_TRUE(writer->messages.empty() && writer->errors.empty());
    EXPECT_EQ(seat->error(), asio::error::operation_aborted);
    r.reset();
    settle();  // the room's last receive completes
    EXPECT_EQ(broadcast_.stats().active_subscribers, 0u);
    seat.reset();
}

}  // namespace
}  // namespace chat

namespace chat {
namespace {

// A client that joined with history, on its own subscriber, moves to the room.
class chat_room_handover : public chat_room {
  protected:
    chat_room_handover() : chat_room("memory://?history=100") {}

    broadcaster::subscriber subscribe_with_history(std::size_t last) {
        broadcaster::subscriber sub;
        run([&]() -> asio::awaitable<void> {
            broadcaster::subscribe_options options(1000, broadcaster::overflow_policy::close);
            options.last = last;
            sub = co_await broadcast_.async_subscribe(room_channel, options, asio::use_awaitable);
        });
        return sub;
    }

    // Everything queued on `sub`; the last of it in `last`.
    static std::vector<std::string> take_all_own(broadcaster::subscriber& sub,
                                                 broadcaster::event& last) {
        std::vector<std::string> taken;
        while (auto ev = sub.try_receive()) {
            taken.emplace_back(ev->message());
            last = std::move(*ev);
        }
        return taken;
    }
};

// The room's subscriber hears of a message after the client's did (it subscribed
// later): the client has not sent it when the room fans it out, so the seat gets it.
TEST_F(chat_room_handover, an_offer_after_the_rooms_last_message_is_seated_with_the_next) {
    publish("old");
    auto own = subscribe_with_history(10);
    const auto r = make_room();
    room_seat live_seat(100, 1 << 20);
    join(*r, live_seat);  // the room subscribes
    broadcaster::event last;
    EXPECT_EQ(take_all_own(own, last), (std::vector<std::string>{"old"}));

    room_seat seat(100, 1 << 20);
    const auto client = std::make_shared<recording_listener>();
    r->offer(seat, *client, last);  // history only: the room never saw "old"
    publish("first");
    EXPECT_EQ(client->seated, 0);
    EXPECT_EQ(take_all_own(own, last), (std::vector<std::string>{"first"}));  // sent on its own
    r->offer(seat, *client, last);
    publish("second");
    EXPECT_EQ(client->seated, 1);
    EXPECT_EQ(take_all(seat), (std::vector<std::string>{"second"}));
    publish("third");
    EXPECT_EQ(take_all(seat), (std::vector<std::string>{"third"}));
    EXPECT_EQ(take_all(live_seat), (std::vector<std::string>{"first", "second", "third"}));
}

// The client sent a message before the room fanned it out: seated after it, the seat
// does not get it again.
TEST_F(chat_room_handover, an_offer_after_the_message_being_fanned_out_is_seated_after_it) {
    const auto r = make_room();
    room_seat live_seat(100, 1 << 20);
    join(*r, live_seat);
    auto own = subscribe_with_history(10);
    broadcaster::event last;
    bool published = false;
    asio::co_spawn(
        io_,
        [&]() -> asio::awaitable<void> {
            co_await broadcast_.async_publish(room_channel, "first", asio::use_awaitable);
            published = true;
        },
        asio::detached);
    io_.restart();
    while (own.queued() == 0 && io_.run_one() > 0) {  // stop before the room's fan-out
    }
    ASSERT_EQ(take_all_own(own, last), (std::vector<std::string>{"first"}));
    ASSERT_EQ(live_seat.queued(), 0u);  // the room has not fanned it out yet

    room_seat seat(100, 1 << 20);
    const auto client = std::make_shared<recording_listener>();
    r->offer(seat, *client, last);
    while (!published && io_.run_one() > 0) {
    }
    settle();
    EXPECT_EQ(client->seated, 1);
    EXPECT_EQ(seat.queued(), 0u);
    publish("second");
    EXPECT_EQ(take_all(seat), (std::vector<std::string>{"second"}));
    EXPECT_EQ(take_all(live_seat), (std::vector<std::string>{"first", "second"}));
}

// An offer the client withdrew (it is sending more on its own), or made by a seat that
// left, is never taken.
TEST_F(chat_room_handover, a_withdrawn_offer_or_a_seat_gone_is_not_seated) {
    const auto r = make_room();
    room_seat live_seat(100, 1 << 20);
    join(*r, live_seat);
    auto own = subscribe_with_history(10);
    publish("first");
    broadcaster::event last;
    take_all_own(own, last);
    const auto client = std::make_shared<recording_listener>();
    room_seat withdrawn(100, 1 << 20);
    r->offer(withdrawn, *client, last);
    r->withdraw(withdrawn);
    {
        room_seat gone(100, 1 << 20);
        r->offer(gone, *client, last);
    }
    publish("second");
    EXPECT_EQ(client->seated, 0);
    EXPECT_EQ(withdrawn.queued(), 0u);
}

// The offer starts the room's subscription when it has none; seated at a later match.
TEST_F(chat_room_handover, an_offer_subscribes_the_room) {
    const auto r = make_room();
    auto own = subscribe_with_history(10);
    publish("first");
    broadcaster::event last;
    take_all_own(own, last);
    room_seat seat(100, 1 << 20);
    const auto client = std::make_shared<recording_listener>();
    EXPECT_EQ(broadcast_.stats().active_subscribers, 1u);
    r->offer(seat, *client, last);
    settle();
    EXPECT_EQ(broadcast_.stats().active_subscribers, 2u);  // the room's
    publish("second");  // the room's first: nothing before it to match
    take_all_own(own, last);
    r->offer(seat, *client, last);
    publish("third");
    EXPECT_EQ(client->seated, 1);
    EXPECT_EQ(take_all(seat), (std::vector<std::string>{"third"}));
}

// Without positions (a backend without history) the two cannot be matched: no seat.
TEST_F(chat_room, an_offer_without_positions_is_never_seated) {
    const auto r = make_room();
    room_seat live_seat(100, 1 << 20);
    join(*r, live_seat);
    broadcaster::subscriber own;
    run([&]() -> asio::awaitable<void> {
        own = co_await broadcast_.async_subscribe(room_channel, asio::use_awaitable);
    });
    room_seat seat(100, 1 << 20);
    const auto client = std::make_shared<recording_listener>();
    for (const auto* m : {"first", "second", "third"}) {
        publish(m);
        auto ev = own.try_receive();
        ASSERT_TRUE(ev);
        r->offer(seat, *client, *ev);
    }
    EXPECT_EQ(client->seated, 0);
    r->withdraw(seat);
}

}  // namespace
}  // namespace chat
