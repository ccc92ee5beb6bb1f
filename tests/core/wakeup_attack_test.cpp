// Hostile checks of the io_context wake-up path (src/subscriber_state.cpp,
// src/completion_blocks.hpp): every promise of subscriber::async_receive, tried through
// each kind of executor a handler may name, across threads, and when the io_context
// goes away before the completion ran.

#include "completion_blocks.hpp"
#include "wakeup_support.hpp"

#include <boost/asio/bind_allocator.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/execution.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_future.hpp>

#include <memory>
#include <optional>
#include <thread>
#include <vector>

namespace broadcaster::test {
namespace {

using boost::system::error_code;

void publish(asio::io_context& io, broadcast& bc, const std::string& channel,
             const std::string& message) {
    bc.async_publish(channel, message, [](error_code ec) { EXPECT_FALSE(ec) << ec.message(); });
    io.restart();
    io.poll();
}

// Counts what goes through it, shared by its copies.
template <typename T>
struct counting_allocator {
    using value_type = T;
    std::shared_ptr<std::atomic<long>> live;
    explicit counting_allocator(std::shared_ptr<std::atomic<long>> l) noexcept
        : live(std::move(l)) {}
    template <typename U>
    counting_allocator(const counting_allocator<U>& other) noexcept : live(other.live) {}
    T* allocate(std::size_t n) {
        ++*live;
        return std::allocator<T>().allocate(n);
    }
    void deallocate(T* p, std::size_t n) {
        --*live;
        std::allocator<T>().deallocate(p, n);
    }
    template <typename U>
    bool operator==(const counting_allocator<U>& other) const noexcept {
        return live == other.live;
    }
};

// ---- never inline, receive_in_progress --------------------------------------------------

// A receive started from inside a handler running on the io_context, with an event
// queued (or another receive pending), completes later, never inside async_receive:
// whatever blocking property the executor carries.
TEST(wakeup_attack, an_immediate_completion_never_runs_inline_whatever_the_executor) {
    asio::io_context io;
    broadcast bc(io.get_executor(), "memory://");
    auto subs = subscribe_all(io, bc, "inline", 1);
    ASSERT_EQ(subs.size(), 1u);
    auto& sub = subs[0];

    const auto plain = io.get_executor();
    const auto never = asio::require(io.get_executor(), asio::execution::blocking.never);
    const auto possibly = asio::require(io.get_executor(), asio::execution::blocking.possibly);
    const auto continuation =
        asio::prefer(io.get_executor(), asio::execution::relationship.continuation);
    bool inside = false;
    int ran = 0;
    const auto check = [&](error_code ec, event ev) {
        EXPECT_FALSE(inside) << "the handler ran inside async_receive";
        EXPECT_FALSE(ec) << ec.message();
        EXPECT_EQ(ev.message(), "queued");
        ++ran;
    };
    const auto receive_inside = [&](auto start) {
        publish(io, bc, "inline", "queued");
        ASSERT_EQ(sub.queued(), 1u);
        asio::post(io, [&] {
            inside = true;
            start();
            inside = false;
        });
        io.restart();
        io.run();
    };
    receive_inside([&] { sub.async_receive(asio::bind_executor(plain, check)); });
    receive_inside([&] { sub.async_receive(asio::bind_executor(never, check)); });
    receive_inside([&] { sub.async_receive(asio::bind_executor(possibly, check)); });
    receive_inside([&] { sub.async_receive(asio::bind_executor(continuation, check)); });
    receive_inside([&] { sub.async_receive(check); });  // the broadcast's executor
    EXPECT_EQ(ran, 5);
}

TEST(wakeup_attack, a_second_receive_completes_with_receive_in_progress_later_not_inline) {
    asio::io_context io;
    broadcast bc(io.get_executor(), "memory://");
    auto subs = subscribe_all(io, bc, "busy", 1);
    ASSERT_EQ(subs.size(), 1u);
    auto& sub = subs[0];

    bool inside = false;
    std::vector<std::string> order;
    asio::post(io, [&] {
        sub.async_receive(asio::bind_executor(io.get_executor(), [&](error_code ec, event ev) {
            EXPECT_FALSE(ec) << ec.message();
            order.push_back("first:" + std::string(ev.message()));
        }));
        inside = true;
        sub.async_receive(asio::bind_executor(io.get_executor(), [&](error_code ec, event) {
            EXPECT_FALSE(inside) << "receive_in_progress ran inline";
            EXPECT_EQ(ec, error::receive_in_progress);
            order.push_back("second:" + ec.message());
        }));
        inside = false;
    });
    io.restart();
    io.poll();
    ASSERT_EQ(order.size(), 1u);
    EXPECT_EQ(order[0].rfind("second:", 0), 0u);
    EXPECT_TRUE(has_work(io)) << "the first receive still waits: it is work";
    publish(io, bc, "busy", "m");
    ASSERT_EQ(order.size(), 2u);
    EXPECT_EQ(order[1], "first:m");
    EXPECT_FALSE(has_work(io));
}

// A receive taken out of the state (its completion posted, not yet run) and the next
// receive started before it ran: the events keep their order.
TEST(wakeup_attack, a_receive_started_while_a_completion_is_in_flight_keeps_the_order) {
    asio::io_context bc_io;
    asio::io_context handler_io;
    broadcast bc(bc_io.get_executor(), "memory://");
    auto subs = subscribe_all(bc_io, bc, "order", 1);
    ASSERT_EQ(subs.size(), 1u);
    auto& sub = subs[0];
    std::vector<std::string> got;
    const auto receive = [&] {
        sub.async_receive(asio::bind_executor(
            handler_io.get_executor(),
            [&](error_code ec, event ev) { got.emplace_back(ec ? ec.message() : ev.message()); }));
    };
    receive();
    publish(bc_io, bc, "order", "1");  // completion posted to handler_io, not run
    receive();
    receive();  // in progress: the second one waits
    publish(bc_io, bc, "order", "2");
    publish(bc_io, bc, "order", "3");
    EXPECT_TRUE(got.empty());
    handler_io.run();
    const std::vector<std::string> expected{"1", error_code(error::receive_in_progress).message(),
                                            "2"};
    EXPECT_EQ(got, expected);
    EXPECT_EQ(sub.queued(), 1u);
}

// ---- executors that are not a plain io_context's ----------------------------------------

TEST(wakeup_attack, work_tracked_strand_and_custom_allocator_executors_still_complete) {
    asio::io_context io;
    broadcast bc(io.get_executor(), "memory://");
    auto subs = subscribe_all(io, bc, "kinds", 1);
    ASSERT_EQ(subs.size(), 1u);
    auto& sub = subs[0];
    auto live = std::make_shared<std::atomic<long>>(0);

    int ran = 0;
    // `make` makes the executor once the io_context is idle (a tracked one is work).
    const auto try_one = [&](auto make, const char* what) {
        ASSERT_FALSE(has_work(io)) << what;
        {
            auto executor = make();  // gone before run(): a tracked one would be work
            sub.async_receive(
                asio::bind_executor(executor, [&, executor, what](error_code ec, event ev) {
                    EXPECT_FALSE(ec) << what << ": " << ec.message();
                    EXPECT_EQ(ev.message(), what);
                    EXPECT_TRUE(io.get_executor().running_in_this_thread()) << what;
                    if constexpr (requires { executor.running_in_this_thread(); }) {
                        EXPECT_TRUE(executor.running_in_this_thread()) << what;
                    }
                    ++ran;
                }));
        }
        EXPECT_TRUE(has_work(io)) << what << ": a pending receive is work";
        publish(io, bc, "kinds", what);
        io.restart();
        io.run();
    };
    try_one(
        [&] { return asio::prefer(io.get_executor(), asio::execution::outstanding_work.tracked); },
        "tracked");
    try_one([&] { return asio::make_strand(io); }, "strand");
    try_one([&] { return asio::make_strand(io.get_executor()); }, "strand of executor");
    try_one(
        [&] {
            return asio::require(io.get_executor(),
                                 asio::execution::allocator(counting_allocator<void>(live)));
        },
        "allocator");
    try_one([&] { return asio::any_io_executor(io.get_executor()); }, "any_io_executor");
    try_one([&] { return asio::require(io.get_executor(), asio::execution::blocking.never); },
            "never");
    EXPECT_EQ(ran, 6);
    EXPECT_EQ(live->load(), 0);
}

TEST(wakeup_attack, a_handler_with_its_own_allocator_gets_all_its_memory_back) {
    auto live = std::make_shared<std::atomic<long>>(0);
    int ran = 0;
    {
        asio::io_context io;
        broadcast bc(io.get_executor(), "memory://");
        auto subs = subscribe_all(io, bc, "alloc", 2);
        ASSERT_EQ(subs.size(), 2u);
        const auto handler = [&](error_code ec, event) {
            EXPECT_FALSE(ec) << ec.message();
            ++ran;
        };
        // Run, with and without an executor of its own.
        subs[0].async_receive(asio::bind_allocator(
            counting_allocator<void>(live), asio::bind_executor(io.get_executor(), handler)));
        subs[1].async_receive(asio::bind_allocator(counting_allocator<void>(live), handler));
        publish(io, bc, "alloc", "x");
        io.restart();
        io.run();
        EXPECT_EQ(ran, 2);
        EXPECT_EQ(live->load(), 0);

        // Destroyed uncalled with their io_context.
        asio::io_context handler_io;
        subs[0].async_receive(
            asio::bind_allocator(counting_allocator<void>(live),
                                 asio::bind_executor(handler_io.get_executor(), handler)));
        subs[1].async_receive(
            asio::bind_allocator(counting_allocator<void>(live),
                                 asio::bind_executor(handler_io.get_executor(), handler)));
        publish(io, bc, "alloc", "y");
        EXPECT_GT(live->load(), 0);
    }
    EXPECT_EQ(ran, 2);
    EXPECT_EQ(live->load(), 0) << "the handler's allocator did not get all back";
}

// ---- completions posted, never run --------------------------------------------------------

// The handler's io_context goes first, last, or between the subscriber and the
// broadcast; the handler owns a token (and in the last variant the subscriber itself).
enum class first_gone { handler_io, subscriber, broadcast };

void posted_then_destroyed(first_gone order, bool handler_owns_subscriber) {
    auto token = std::make_shared<int>(0);
    std::weak_ptr<int> alive = token;
    bool called = false;
    auto io = std::make_unique<asio::io_context>();
    auto bc = std::make_unique<broadcast>(io->get_executor(), "memory://");
    auto subs = subscribe_all(*io, *bc, "gone", 3);
    ASSERT_EQ(subs.size(), 3u);
    auto handler_io = std::make_unique<asio::io_context>();
    std::vector<std::shared_ptr<subscriber>> owned;
    for (auto& s : subs) {
        owned.push_back(std::make_shared<subscriber>(std::move(s)));
    }
    for (auto& s : owned) {
        auto keep = handler_owns_subscriber ? s : nullptr;
        s->async_receive(
            asio::bind_executor(handler_io->get_executor(),
                                [token, keep, &called](error_code, event) { called = true; }));
    }
    token.reset();
    publish(*io, *bc, "gone", "never seen");
    if (handler_owns_subscriber) {
        owned.clear();
    }
    switch (order) {
        case first_gone::handler_io:
            handler_io.reset();
            owned.clear();
            bc.reset();
            io.reset();
            break;
        case first_gone::subscriber:
            owned.clear();
            bc.reset();
            io.reset();
            handler_io.reset();
            break;
        case first_gone::broadcast:
            bc.reset();
            io.reset();
            handler_io.reset();
            owned.clear();
            break;
    }
    EXPECT_FALSE(called);
    EXPECT_TRUE(alive.expired()) << "a completion never run leaked its handler";
}

TEST(wakeup_attack, posted_completions_die_with_the_handler_io_context_first) {
    posted_then_destroyed(first_gone::handler_io, false);
}
TEST(wakeup_attack, posted_completions_die_with_the_handler_io_context_after_the_subscribers) {
    posted_then_destroyed(first_gone::subscriber, false);
}
TEST(wakeup_attack, posted_completions_die_with_the_handler_io_context_after_the_broadcast) {
    posted_then_destroyed(first_gone::broadcast, false);
}
TEST(wakeup_attack, posted_completions_owning_their_subscriber_die_with_the_io_context) {
    posted_then_destroyed(first_gone::handler_io, true);
}
TEST(wakeup_attack, posted_completions_owning_their_subscriber_outlive_the_broadcast) {
    posted_then_destroyed(first_gone::broadcast, true);
}

// The broadcast's own io_context, with a fan-out half run: the rest is destroyed with it.
TEST(wakeup_attack, a_fan_out_half_run_is_destroyed_with_the_io_context) {
    constexpr int subscribers = 40;
    auto token = std::make_shared<int>(0);
    std::weak_ptr<int> alive = token;
    int called = 0;
    {
        asio::io_context io;
        broadcast bc(io.get_executor(), "memory://");
        auto subs = subscribe_all(io, bc, "half", subscribers);
        ASSERT_EQ(subs.size(), std::size_t{subscribers});
        for (auto& s : subs) {
            s.async_receive([token, &called](error_code ec, event) {
                EXPECT_FALSE(ec);
                ++called;
            });
        }
        token.reset();
        bc.async_publish("half", "m", [](error_code) {});
        io.restart();
        while (called < subscribers / 2 && io.run_one() > 0) {
        }
        ASSERT_GE(called, subscribers / 2);
        ASSERT_LT(called, subscribers);
        // subs, then bc, then io go: the rest never runs.
    }
    EXPECT_LT(called, subscribers);
    EXPECT_TRUE(alive.expired());
}

// The broadcast (disconnected) and its io_context are gone before the handler's
// io_context runs the completion: the handler still gets its event, and its next
// receive ends the stream there.
TEST(wakeup_attack, a_completion_run_after_its_broadcast_and_io_context_are_gone) {
    asio::io_context handler_io;
    std::vector<std::string> got;
    std::optional<subscriber> sub;
    {
        asio::io_context io;
        {
            broadcast bc(io.get_executor(), "memory://");
            auto subs = subscribe_all(io, bc, "late", 1);
            ASSERT_EQ(subs.size(), 1u);
            sub.emplace(std::move(subs[0]));
            sub->async_receive(
                asio::bind_executor(handler_io.get_executor(), [&](error_code ec, event ev) {
                    got.emplace_back(ec ? ec.message() : ev.message());
                    sub->async_receive(asio::bind_executor(
                        handler_io.get_executor(), [&](error_code ec, event ev) {
                            EXPECT_TRUE(handler_io.get_executor().running_in_this_thread());
                            got.emplace_back(ec ? ec.message() : ev.message());
                        }));
                }));
            publish(io, bc, "late", "m");
        }
        io.restart();
        io.run();  // the broadcast's background disconnect ends its subscribers
    }
    handler_io.run_for(10s);
    const std::vector<std::string> expected{"m", error_code(error::end_of_stream).message()};
    EXPECT_EQ(got, expected);
    EXPECT_TRUE(handler_io.stopped()) << "a receive on an ended subscriber is still work";
}

// A coroutine on one io_context owns its broadcast (on another) and its subscriber; an
// event wakes it, and its io_context is destroyed before the completion ran: the frame,
// the subscriber and the broadcast go with it.
TEST(wakeup_attack, a_coroutine_woken_but_never_resumed_is_freed_with_its_io_context) {
    asio::io_context bc_io;
    auto coro_io = std::make_unique<asio::io_context>();
    std::weak_ptr<int> frame_alive;
    broadcast* bc_seen = nullptr;
    bool waiting = false;
    asio::co_spawn(
        *coro_io,
        [&]() -> asio::awaitable<void> {
            auto token = std::make_shared<int>(0);
            frame_alive = token;
            broadcast bc(bc_io.get_executor(), "memory://");
            co_await bc.async_connect(asio::use_awaitable);
            auto sub = co_await bc.async_subscribe("woken", asio::use_awaitable);
            bc_seen = &bc;
            for (;;) {
                waiting = true;
                (void)co_await sub.async_receive(asio::use_awaitable);
                ADD_FAILURE() << "resumed";
            }
        },
        asio::detached);
    for (int i = 0; i < 1000 && !waiting; ++i) {
        coro_io->restart();
        coro_io->poll();
        bc_io.restart();
        bc_io.poll();
    }
    ASSERT_TRUE(waiting);
    ASSERT_NE(bc_seen, nullptr);
    bc_seen->async_publish("woken", "m", [](error_code) {});
    bc_io.restart();
    bc_io.poll();  // the receive's completion is now queued on coro_io
    ASSERT_FALSE(frame_alive.expired());
    coro_io.reset();
    EXPECT_TRUE(frame_alive.expired()) << "the coroutine frame leaked";
    bc_io.restart();
    bc_io.poll();  // the broadcast's background disconnect
}

// ---- cancellation ----------------------------------------------------------------------

// Each cancellation type aborts a receive waiting on the io_context path; the
// subscriber then receives as before. A cancellation emitted once the completion is
// queued (not yet run) changes nothing: the event is delivered, not lost.
TEST(wakeup_attack, every_cancellation_type_aborts_a_waiting_receive_and_a_late_one_is_ignored) {
    asio::io_context bc_io;
    asio::io_context handler_io;
    broadcast bc(bc_io.get_executor(), "memory://");
    auto subs = subscribe_all(bc_io, bc, "cancel", 1);
    ASSERT_EQ(subs.size(), 1u);
    auto& sub = subs[0];
    asio::cancellation_signal signal;
    std::vector<std::string> got;
    const auto receive = [&] {
        sub.async_receive(asio::bind_cancellation_slot(
            signal.slot(),
            asio::bind_executor(handler_io.get_executor(), [&](error_code ec, event ev) {
                got.emplace_back(ec ? ec.message() : ev.message());
            })));
    };
    const auto aborted = error_code(asio::error::operation_aborted).message();
    for (const auto type : {asio::cancellation_type::terminal, asio::cancellation_type::partial,
                            asio::cancellation_type::total}) {
        got.clear();
        receive();
        signal.emit(type);
        EXPECT_TRUE(got.empty()) << "completed inside emit";
        handler_io.restart();
        handler_io.run();
        EXPECT_EQ(got, std::vector<std::string>{aborted});
    }
    got.clear();
    receive();
    publish(bc_io, bc, "cancel", "kept");  // completion queued on handler_io
    signal.emit(asio::cancellation_type::terminal);
    handler_io.restart();
    handler_io.run();
    EXPECT_EQ(got, std::vector<std::string>{"kept"});
    EXPECT_EQ(sub.queued(), 0u);
}

// ---- threads ---------------------------------------------------------------------------

// Blocks allocated by the publishing thread, freed by the thread running the handlers,
// which then ends with blocks cached (its cache must go with it: LeakSanitizer).
TEST(wakeup_attack, completions_cross_threads_and_a_thread_ends_with_blocks_cached) {
    constexpr int messages = 500;
    constexpr int subscribers = 8;
    asio::io_context bc_io;
    broadcast bc(bc_io.get_executor(), "memory://");
    auto subs = subscribe_all(bc_io, bc, "cross", subscribers, messages);
    ASSERT_EQ(subs.size(), std::size_t{subscribers});

    auto handler_io = std::make_unique<asio::io_context>();
    std::atomic<int> received{0};
    std::vector<int> per_subscriber(subscribers, 0);
    std::size_t cached_by_handler_thread = 0;
    std::function<void(int)> arm = [&](int i) {
        subs[i].async_receive(
            asio::bind_executor(handler_io->get_executor(), [&, i](error_code ec, event) {
                ASSERT_FALSE(ec) << ec.message();
                if (++received == messages * subscribers) {
                    cached_by_handler_thread = detail::completion_blocks::cached();
                }
                if (++per_subscriber[i] < messages) {
                    arm(i);
                }
            }));
    };
    for (int i = 0; i < subscribers; ++i) {
        arm(i);
    }
    std::thread handler_thread([&] { handler_io->run(); });
    std::thread publisher([&] {
        for (int i = 0; i < messages; ++i) {
            bc.async_publish("cross", std::to_string(i), asio::use_future).get();
        }
    });
    auto guard = asio::make_work_guard(bc_io);
    std::thread bc_thread([&] { bc_io.run(); });
    publisher.join();
    handler_thread.join();  // returns when no receive waits any more
    guard.reset();
    bc_thread.join();
    EXPECT_EQ(received.load(), messages * subscribers);
    if (detail::completion_blocks::enabled) {
        EXPECT_GT(cached_by_handler_thread, 0u) << "the handler thread freed no block";
    }
    EXPECT_LE(cached_by_handler_thread, detail::completion_blocks::max_blocks);
}

// A thread that never pushed a block until its io_context (a thread_local) is destroyed
// as it ends: the cache registers its reaper then.
TEST(wakeup_attack, a_thread_local_io_context_destroyed_at_thread_exit) {
    asio::io_context bc_io;
    broadcast bc(bc_io.get_executor(), "memory://");
    auto subs = subscribe_all(bc_io, bc, "tls", 4);
    ASSERT_EQ(subs.size(), 4u);
    auto token = std::make_shared<int>(0);
    std::weak_ptr<int> alive = token;
    std::thread t([&] {
        thread_local asio::io_context handler_io;
        for (auto& s : subs) {
            s.async_receive(asio::bind_executor(handler_io.get_executor(),
                                                [token](error_code, event) { ADD_FAILURE(); }));
        }
        publish(bc_io, bc, "tls", "x");
        token.reset();
    });
    t.join();
    EXPECT_TRUE(alive.expired());
}

// Several threads run the io_context; a fan-out while subscribers are read, polled and
// unsubscribed from other threads. Every event reaches its subscriber exactly once
// (through a handler or try_receive); run() returns only when every loop has ended.
TEST(wakeup_attack, fan_out_on_four_threads_with_concurrent_unsubscribe_and_polling) {
    constexpr int subscribers = 24;
    constexpr int messages = 300;
    asio::io_context io(4);
    broadcast bc(io.get_executor(), "memory://");
    auto subs = subscribe_all(io, bc, "mt", subscribers, messages + 8);
    ASSERT_EQ(subs.size(), std::size_t{subscribers});

    struct tally {
        std::atomic<int> handled{0};
        std::atomic<int> polled{0};
        std::atomic<int> aborted{0};
        std::atomic<int> errors{0};
        std::atomic<bool> ended{false};
    };
    std::vector<tally> tallies(subscribers);
    std::function<void(int)> arm = [&](int i) {
        subs[i].async_receive(asio::bind_executor(io.get_executor(), [&, i](error_code ec, event) {
            if (ec == asio::error::operation_aborted || ec == error::end_of_stream) {
                ++tallies[i].aborted;
                tallies[i].ended = true;
                return;
            }
            if (ec == error::receive_in_progress) {
                ++tallies[i].errors;  // never: one loop per subscriber
                return;
            }
            EXPECT_FALSE(ec) << ec.message();
            ++tallies[i].handled;
            arm(i);
        }));
    };
    for (int i = 0; i < subscribers; ++i) {
        arm(i);
    }
    std::vector<std::thread> runners;
    for (int t = 0; t < 4; ++t) {
        runners.emplace_back([&] { io.run(); });
    }
    std::atomic<bool> stop{false};
    std::thread poller([&] {
        std::size_t n = 0;
        while (!stop) {
            const int i = static_cast<int>(n++ % subscribers);
            (void)subs[i].queued();
            if (i % 3 == 0 && subs[i].try_receive()) {
                ++tallies[i].polled;
            }
        }
    });
    for (int m = 0; m < messages; ++m) {
        bc.async_publish("mt", std::to_string(m), asio::use_future).get();
        if (m == messages / 2) {
            // Half of the odd subscribers leave mid-stream, from this thread.
            for (int i = 1; i < subscribers; i += 4) {
                subs[i].unsubscribe();
            }
        }
    }
    const auto until = std::chrono::steady_clock::now() + 30s;
    const auto all_seen = [&] {
        for (int i = 0; i < subscribers; ++i) {
            if (i % 4 == 1) {
                continue;
            }
            if (tallies[i].handled + tallies[i].polled < messages) {
                return false;
            }
        }
        return true;
    };
    while (!all_seen() && std::chrono::steady_clock::now() < until) {
        std::this_thread::yield();
    }
    stop = true;
    poller.join();
    EXPECT_TRUE(all_seen()) << "events lost";
    for (auto& s : subs) {
        s.unsubscribe();
    }
    for (auto& r : runners) {
        r.join();  // returns only once every loop's last handler has run
    }
    for (int i = 0; i < subscribers; ++i) {
        EXPECT_TRUE(tallies[i].ended) << "subscriber " << i << ": run() returned first";
        EXPECT_EQ(tallies[i].aborted.load(), 1) << i;
        EXPECT_EQ(tallies[i].errors.load(), 0) << i;
        if (i % 4 != 1) {
            EXPECT_EQ(tallies[i].handled + tallies[i].polled, messages) << i;
        }
    }
}

// Two threads start a receive on the same subscriber at once, round after round: one
// waits, the other completes with receive_in_progress, on the io_context's thread.
TEST(wakeup_attack, concurrent_receives_from_two_threads_one_waits_one_is_refused) {
    constexpr int rounds = 300;
    asio::io_context bc_io;
    broadcast bc(bc_io.get_executor(), "memory://");
    auto subs = subscribe_all(bc_io, bc, "two", 1);
    ASSERT_EQ(subs.size(), 1u);
    auto& sub = subs[0];
    asio::io_context handler_io;
    auto handler_guard = asio::make_work_guard(handler_io);
    std::thread handler_thread([&] { handler_io.run(); });
    auto bc_guard = asio::make_work_guard(bc_io);
    std::thread bc_thread([&] { bc_io.run(); });

    std::atomic<int> refused{0};
    std::atomic<int> received{0};
    std::atomic<int> other{0};
    const auto handler = asio::bind_executor(handler_io.get_executor(), [&](error_code ec, event) {
        EXPECT_TRUE(handler_io.get_executor().running_in_this_thread());
        if (ec == error::receive_in_progress) {
            ++refused;
        } else if (!ec) {
            ++received;
        } else {
            ++other;
        }
    });
    for (int r = 0; r < rounds; ++r) {
        std::atomic<int> ready{0};
        const auto start = [&] {
            ++ready;
            while (ready < 2) {
            }
            auto copy = handler;
            sub.async_receive(std::move(copy));
        };
        std::thread a(start);
        std::thread b(start);
        a.join();
        b.join();
        while (refused.load() < r + 1) {
            std::this_thread::yield();
        }
        bc.async_publish("two", std::to_string(r), asio::use_future).get();
        while (received.load() < r + 1) {
            std::this_thread::yield();
        }
    }
    handler_guard.reset();
    handler_thread.join();
    bc_guard.reset();
    bc_thread.join();
    EXPECT_EQ(refused.load(), rounds);
    EXPECT_EQ(received.load(), rounds);
    EXPECT_EQ(other.load(), 0);
}

// Cancellation emitted on the handler's io_context thread while another thread
// publishes: each receive ends once, aborted or with an event, and no event is lost.
TEST(wakeup_attack, cancellation_racing_completions_from_another_thread_loses_nothing) {
    constexpr int messages = 2000;
    asio::io_context bc_io;
    broadcast bc(bc_io.get_executor(), "memory://");
    auto subs = subscribe_all(bc_io, bc, "race", 1, messages);
    ASSERT_EQ(subs.size(), 1u);
    auto& sub = subs[0];

    asio::io_context handler_io(1);
    asio::cancellation_signal signal;
    int received = 0;
    int aborted = 0;
    int expected_next = 0;
    std::function<void()> arm = [&] {
        sub.async_receive(asio::bind_cancellation_slot(
            signal.slot(),
            asio::bind_executor(handler_io.get_executor(), [&](error_code ec, event ev) {
                if (ec == asio::error::operation_aborted) {
                    ++aborted;
                } else {
                    ASSERT_FALSE(ec) << ec.message();
                    EXPECT_EQ(ev.message(), std::to_string(expected_next));
                    ++expected_next;
                    ++received;
                    while (auto more = sub.try_receive()) {
                        EXPECT_EQ(more->message(), std::to_string(expected_next));
                        ++expected_next;
                        ++received;
                    }
                }
                if (received == messages) {
                    return;
                }
                arm();
                // Cancel every other receive, right after it started: it races the
                // publisher, which may have taken it already.
                if ((received + aborted) % 2 == 0) {
                    asio::post(handler_io, [&] { signal.emit(asio::cancellation_type::all); });
                }
            })));
    };
    asio::post(handler_io, arm);
    auto guard = asio::make_work_guard(bc_io);
    std::thread bc_thread([&] { bc_io.run(); });
    std::thread publisher([&] {
        for (int i = 0; i < messages; ++i) {
            bc.async_publish("race", std::to_string(i), asio::use_future).get();
        }
    });
    handler_io.run();  // returns once the last receive's handler has run
    publisher.join();
    guard.reset();
    bc_thread.join();
    EXPECT_EQ(received, messages);
    EXPECT_GT(aborted, 0) << "no cancellation took effect: the test proved nothing";
}

}  // namespace
}  // namespace broadcaster::test

// A static io_context (destroyed at exit, after the main thread's thread_locals) with a
// completion still queued on it. The completion's block is freed then, by a thread
// whose cache is gone (LeakSanitizer and ASan judge what happens).
namespace broadcaster::test {
namespace {
asio::io_context& exit_time_io() {
    static asio::io_context io;
    return io;
}

TEST(wakeup_attack, a_static_io_context_destroyed_at_exit_with_a_completion_queued) {
    asio::io_context bc_io;
    broadcast bc(bc_io.get_executor(), "memory://");
    auto subs = subscribe_all(bc_io, bc, "exit", 1);
    ASSERT_EQ(subs.size(), 1u);
    subs[0].async_receive(
        asio::bind_executor(exit_time_io().get_executor(), [](error_code, event) {}));
    publish(bc_io, bc, "exit", "at exit");
    EXPECT_EQ(subs[0].queued(), 0u);
}
}  // namespace
}  // namespace broadcaster::test
