// The Postgres listener's command queue, without I/O: the driver's steps are taken by
// hand (and in random order, seeded), so every interleaving is reproducible.

#include "backends/postgres/listener_queue.hpp"

#include <gtest/gtest.h>

#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <random>

namespace broadcaster::test {
namespace {

using boost::system::error_code;
using handler = std::function<void(error_code)>;
using queue = detail::listener_queue<handler>;

const error_code refused = make_error_code(boost::system::errc::permission_denied);
const error_code lost = make_error_code(boost::system::errc::connection_reset);

// Handlers that count their calls.
struct calls {
    std::vector<int> count;
    std::vector<error_code> result;
    handler track() {
        const auto id = count.size();
        count.push_back(0);
        result.emplace_back();
        return [this, id](error_code ec) {
            ++count[id];
            result[id] = ec;
        };
    }
};

void run(std::optional<queue::completion> done) {
    ASSERT_TRUE(done);
    done->handler(done->ec);
}
void run(std::vector<queue::completion> done) {
    for (auto& c : done) {
        c.handler(c.ec);
    }
}

TEST(listener_queue, a_command_interrupts_only_the_idle_wait_and_only_once) {
    queue q;
    calls c;
    EXPECT_FALSE(q.push(true, "a", "a", c.track())) << "not waiting: nothing to interrupt";
    ASSERT_TRUE(q.start_next());
    // While a command runs, new ones queue and interrupt nothing.
    EXPECT_FALSE(q.push(true, "b", "b", c.track()));
    EXPECT_FALSE(q.begin_wait());
    run(q.finish({}));
    EXPECT_FALSE(q.begin_wait()) << "b is queued";
    ASSERT_TRUE(q.start_next());
    run(q.finish({}));
    ASSERT_TRUE(q.begin_wait());
    EXPECT_TRUE(q.push(true, "c", "c", c.track())) << "idle wait: wake the driver";
    EXPECT_FALSE(q.push(true, "d", "d", c.track())) << "already woken";
    q.end_wait();
    EXPECT_FALSE(q.push(true, "e", "e", c.track())) << "awake";
    EXPECT_EQ(c.count, (std::vector<int>{1, 1, 0, 0, 0}));
}

// Other work than a command (a history read) wakes the idle wait the same way: once,
// and never while the driver is busy.
TEST(listener_queue, other_work_wakes_only_the_idle_wait_and_only_once) {
    queue q;
    calls c;
    EXPECT_FALSE(q.wake()) << "not waiting";
    ASSERT_TRUE(q.begin_wait());
    EXPECT_TRUE(q.wake());
    EXPECT_FALSE(q.wake()) << "already woken";
    EXPECT_FALSE(q.push(true, "a", "a", c.track())) << "already woken";
    q.end_wait();
    EXPECT_FALSE(q.wake()) << "not waiting any more";
}

TEST(listener_queue, one_command_runs_at_a_time_in_order) {
    queue q;
    calls c;
    q.push(true, "a", "a", c.track());
    q.push(false, "a", "a", c.track());
    q.push(true, "b", "b", c.track());
    const auto* first = q.start_next();
    ASSERT_TRUE(first);
    EXPECT_TRUE(first->listen);
    EXPECT_EQ(first->channel, "a");
    EXPECT_FALSE(q.start_next()) << "the first one still runs";
    run(q.finish({}));
    const auto* second = q.start_next();
    ASSERT_TRUE(second);
    EXPECT_FALSE(second->listen);
    run(q.finish({}));
    EXPECT_EQ(q.start_next()->channel, "b");
    run(q.finish({}));
    EXPECT_TRUE(q.idle());
    EXPECT_EQ(c.count, (std::vector<int>{1, 1, 1}));
}

// The defect behind wedged channels: the running command's completion was lost with
// the connection.
TEST(listener_queue, a_lost_connection_completes_the_running_and_the_queued_commands_once) {
    queue q;
    calls c;
    q.push(true, "a", "a", c.track());
    q.push(false, "b", "b", c.track());
    q.push(true, "c", "c", c.track());
    ASSERT_TRUE(q.start_next());
    run(q.fail_all(lost));
    EXPECT_EQ(c.count, (std::vector<int>{1, 1, 1}));
    EXPECT_EQ(c.result[0], lost);
    EXPECT_FALSE(c.result[1]) << "an unsubscribe is done either way";
    EXPECT_EQ(c.result[2], lost);
    // The old connection's driver resumes late: nothing is completed twice.
    EXPECT_FALSE(q.finish({}));
    EXPECT_TRUE(q.idle());
    EXPECT_FALSE(q.find("a")) << "a failed subscribe is not restored by a reconnect";
    EXPECT_FALSE(q.find("c"));
    EXPECT_TRUE(q.listened().empty());
}

TEST(listener_queue, a_lost_connection_ends_the_wait_state) {
    queue q;
    calls c;
    ASSERT_TRUE(q.begin_wait());
    run(q.fail_all(lost));
    // The next connection's driver is not waiting yet: no wake for it.
    EXPECT_FALSE(q.push(true, "a", "a", c.track()));
}

TEST(listener_queue, channels_follow_the_last_command) {
    queue q;
    calls c;
    q.push(true, "ours", "pg", c.track());
    ASSERT_TRUE(q.find("pg"));
    EXPECT_EQ(*q.find("pg"), "ours");
    q.push(false, "ours", "pg", c.track());
    EXPECT_FALSE(q.find("pg")) << "unsubscribed: deliver nothing more";
    q.push(true, "ours", "pg", c.track());
    // The first LISTEN fails: a later command on the channel still decides.
    ASSERT_TRUE(q.start_next());
    run(q.finish(refused));
    EXPECT_TRUE(q.find("pg"));
    ASSERT_TRUE(q.start_next());
    run(q.finish({}));
    ASSERT_TRUE(q.start_next());
    run(q.finish(refused));
    EXPECT_FALSE(q.find("pg")) << "the last LISTEN failed";
    EXPECT_EQ(c.result[0], refused);
    EXPECT_EQ(c.result[2], refused);
    q.push(true, "x", "x", c.track());
    q.forget("x");
    EXPECT_FALSE(q.find("x"));
}

TEST(listener_queue, a_lost_connection_keeps_channels_listened_before) {
    queue q;
    calls c;
    q.push(true, "a", "a", c.track());
    ASSERT_TRUE(q.start_next());
    run(q.finish({}));
    q.push(true, "b", "b", c.track());
    run(q.fail_all(lost));
    EXPECT_EQ(q.listened(), std::vector<std::string>{"a"});
    run(q.clear(lost));
    EXPECT_TRUE(q.listened().empty()) << "a disconnect forgets them";
}

// Random schedules of the app's calls and the driver's steps, seeded: each
// completion is called exactly once, a wake is asked only of an idle driver, and the
// channels listened to are what the last command of each said.
TEST(listener_queue, random_schedules_keep_every_promise) {
    constexpr int schedules = 2000;
    for (unsigned seed = 1; seed <= schedules; ++seed) {
        SCOPED_TRACE("seed " + std::to_string(seed));
        std::mt19937 random(seed);
        queue q;
        calls c;
        // A model of what should be listened to: the last command of a channel decides,
        // unless that command was a LISTEN that failed.
        std::map<std::string, bool> expected;
        std::deque<std::pair<bool, std::string>> pending;  // the model's queue
        std::optional<std::pair<bool, std::string>> current;
        bool running = false;
        bool waiting = false;
        bool woken = false;
        const auto pick = [&](int n) { return static_cast<int>(random() % n); };
        for (int step = 0; step < 200; ++step) {
            switch (pick(6)) {
                case 0:
                case 1: {  // the app
                    const bool listen = pick(2) == 0;
                    const std::string channel(1, static_cast<char>('a' + pick(3)));
                    expected[channel] = listen;
                    pending.emplace_back(listen, channel);
                    const bool wake = q.push(listen, channel, channel, c.track());
                    ASSERT_EQ(wake, waiting && !woken);
                    woken = woken || wake;
                    break;
                }
                case 2:  // the driver starts a command
                    if (!waiting && !running) {
                        const auto* command = q.start_next();
                        running = command != nullptr;
                        ASSERT_EQ(running, !pending.empty());
                        if (running) {
                            ASSERT_EQ(command->listen, pending.front().first);
                            ASSERT_EQ(command->channel, pending.front().second);
                            current = pending.front();
                            pending.pop_front();
                        }
                    }
                    break;
                case 3:  // the running command is done, or refused
                    if (running) {
                        const bool ok = pick(4) != 0;
                        run(q.finish(ok ? error_code() : refused));
                        running = false;
                        const auto& [listen, channel] = *current;
                        if (!ok && listen &&
                            std::none_of(pending.begin(), pending.end(),
                                         [&](const auto& p) { return p.second == channel; })) {
                            expected[channel] = false;
                        }
                    }
                    break;
                case 4:  // the driver waits, or stops waiting
                    if (waiting) {
                        q.end_wait();
                        waiting = false;
                    } else if (!running) {
                        waiting = q.begin_wait();
                        woken = false;
                    }
                    break;
                case 5:  // the connection is lost, now and then
                    if (pick(10) == 0) {
                        run(q.fail_all(lost));
                        if (running) {
                            pending.push_front(*current);
                        }
                        for (const auto& [listen, channel] : pending) {
                            if (listen) {
                                expected[channel] = false;
                            }
                        }
                        pending.clear();
                        running = waiting = woken = false;
                        ASSERT_TRUE(q.idle());
                    }
                    break;
            }
            for (const int n : c.count) {
                ASSERT_LE(n, 1);
            }
            for (const auto& [channel, listen] : expected) {
                ASSERT_EQ(q.find(channel) != nullptr, listen) << channel << " at step " << step;
            }
        }
        // Drain: the driver runs what is left, each command succeeding.
        if (waiting) {
            q.end_wait();
        }
        if (running) {
            run(q.finish({}));
        }
        while (q.start_next()) {
            run(q.finish({}));
        }
        for (const int n : c.count) {
            ASSERT_EQ(n, 1);
        }
        for (const auto& [channel, listen] : expected) {
            ASSERT_EQ(q.find(channel) != nullptr, listen) << channel;
        }
    }
}

}  // namespace
}  // namespace broadcaster::test
