// redis-cluster:// while the cluster changes under it: a slot moved to another master
// (-MOVED on publish, sunsubscribe pushed to subscribers), a master killed with -9 and
// failed over to its replica, a slot no master serves. The cluster is the "chaos" one,
// which these tests have to themselves (which also lets one count what its nodes
// read); each leaves it settled (every slot served, every node up).
//
// What they assert does not depend on timing: per subscriber, messages arrive in
// order and never twice; a message lost is one whose publish overlapped the measured
// window of the change (from its start until every subscriber instance reported
// `connected` again); everything published outside that window arrives.

#include "backends/redis_cluster/hash_slot.hpp"
#include "cluster_control.hpp"
#include "test_support.hpp"

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/detached.hpp>

#include <future>
#include <iostream>
#include <memory>

namespace broadcaster::test {
namespace {

using asio::use_awaitable;
using clock = std::chrono::steady_clock;

const redis_cluster_servers& chaos() {
    return redis_cluster_servers::chaos();
}

// A URL for the chaos cluster with `seed` as its only seed node. Reconnect attempts
// are capped at 200 ms so that the end of a failover is noticed soon.
std::string chaos_url(unsigned short seed) {
    return "redis-cluster://127.0.0.1:" + std::to_string(seed) +
           "?reconnect_max_ms=200&publish_timeout_ms=20000";
}

// Numbered messages on one channel, up to 32 unacknowledged, one per millisecond.
struct stream {
    struct record {
        clock::time_point started;
        clock::time_point acked;
        bool done = false;
        bool ok = false;
    };
    std::vector<record> records;
    int in_flight = 0;
    bool stopping = false;

    asio::awaitable<void> run(broadcast& bc, std::string channel) {
        asio::steady_timer timer(co_await asio::this_coro::executor);
        while (!stopping) {
            if (in_flight < 32) {
                const auto n = records.size();
                records.push_back({clock::now(), {}, false, false});
                ++in_flight;
                bc.async_publish(channel, std::to_string(n),
                                 [this, n](boost::system::error_code ec) {
                                     records[n].acked = clock::now();
                                     records[n].done = true;
                                     records[n].ok = !ec;
                                     --in_flight;
                                 });
            }
            timer.expires_after(1ms);
            co_await timer.async_wait(use_awaitable);
        }
        co_await eventually([this] { return in_flight == 0; }, 30s);
    }

    // Messages acknowledged whose publish started after `t`.
    std::size_t acked_after(clock::time_point t) const {
        return static_cast<std::size_t>(
            std::count_if(records.begin(), records.end(),
                          [&](const record& r) { return r.done && r.ok && r.started > t; }));
    }
};

// One subscriber instance: what it received, and when it reported its states.
struct receiver {
    broadcast bc;
    std::optional<subscriber> sub;
    std::vector<long> received;
    std::vector<std::pair<connection_state, clock::time_point>> states;

    receiver(asio::io_context& io, const std::string& url) : bc(io, url) {
        bc.on_state_change([this](connection_state s, boost::system::error_code) {
            states.emplace_back(s, clock::now());
        });
    }

    asio::awaitable<void> start(std::string channel) {
        co_await bc.async_connect(use_awaitable);
        sub.emplace(co_await bc.async_subscribe(channel, use_awaitable));
        asio::co_spawn(co_await asio::this_coro::executor, collect(), asio::detached);
    }

    asio::awaitable<void> collect() {
        try {
            for (;;) {
                const auto ev = co_await sub->async_receive(use_awaitable);
                received.push_back(std::stol(std::string(ev.message())));
            }
        } catch (const std::exception&) {
            // the subscriber was closed at the end of the test
        }
    }

    // When it reported `connected` after `t` following a `reconnecting`, if it did.
    std::optional<clock::time_point> resumed_after(clock::time_point t) const {
        bool lost = false;
        for (const auto& [state, when] : states) {
            if (when < t) {
                continue;
            }
            lost = lost || state == connection_state::reconnecting;
            if (lost && state == connection_state::connected) {
                return when;
            }
        }
        return std::nullopt;
    }
};

// Publishes on a channel served by the master on `victim_port` (chosen by `pick`),
// runs `change` (on another thread: it blocks) once 300 messages went through, waits
// until every receiver resumed and 300 more went through, and checks what arrived.
void stream_through_a_change(
    const std::function<unsigned short(const std::vector<unsigned short>& masters)>& pick,
    const std::function<void(unsigned short victim, int slot)>& change, const char* what) {
    wait_cluster_settled(chaos());
    const auto masters = master_ports(chaos());
    const auto victim = pick(masters);
    std::string channel;
    for (int n = 0;; ++n) {
        channel = unique_name("stream") + "-" + std::to_string(n);
        if (slot_owner(victim, detail::hash_slot(channel)) == victim) {
            break;
        }
    }
    const int slot = detail::hash_slot(channel);
    // The instances know other seeds than the victim.
    std::vector<unsigned short> others;
    for (const auto port : masters) {
        if (port != victim) {
            others.push_back(port);
        }
    }
    run_async_test(
        [&](asio::io_context& io) -> asio::awaitable<void> {
            broadcast publisher(io, chaos_url(others[0]));
            co_await publisher.async_connect(use_awaitable);
            receiver first(io, chaos_url(others[1]));
            receiver second(io, chaos_url(others[0]));
            co_await first.start(channel);
            co_await second.start(channel);

            stream s;
            bool stream_done = false;
            asio::co_spawn(io, s.run(publisher, channel),
                           [&](std::exception_ptr) { stream_done = true; });
            // A failure stops the stream and the receivers before the frame holding them
            // goes (they would run on, on freed memory).
            std::exception_ptr failure;
            try {
                co_await eventually([&] { return s.acked_after({}) >= 300; }, 20s);

                const auto changed_at = clock::now();
                auto changing = std::async(std::launch::async, [&] { change(victim, slot); });
                co_await eventually(
                    [&] { return changing.wait_for(0s) == std::future_status::ready; }, 90s);
                changing.get();  // rethrows what went wrong
                co_await eventually(
                    [&] {
                        return first.resumed_after(changed_at) && second.resumed_after(changed_at);
                    },
                    30s);
                const auto resumed =
                    std::max(*first.resumed_after(changed_at), *second.resumed_after(changed_at));
                co_await eventually([&] { return s.acked_after(resumed) >= 300; }, 30s);
                s.stopping = true;
                co_await eventually([&] { return stream_done; }, 40s);

                long last_ok = -1;
                for (std::size_t i = 0; i < s.records.size(); ++i) {
                    if (s.records[i].ok) {
                        last_ok = static_cast<long>(i);
                    }
                }
                for (auto* r : {&first, &second}) {
                    co_await eventually(
                        [&] { return !r->received.empty() && r->received.back() >= last_ok; }, 10s);
                }
                std::cout << what << ": window "
                          << std::chrono::duration_cast<std::chrono::milliseconds>(resumed -
                                                                                   changed_at)
                                 .count()
                          << " ms, " << s.records.size() << " published\n";
                for (auto* r : {&first, &second}) {
                    // In order, never twice.
                    for (std::size_t i = 1; i < r->received.size(); ++i) {
                        EXPECT_LT(r->received[i - 1], r->received[i]) << "at " << i;
                    }
                    std::vector<bool> got(s.records.size(), false);
                    for (const auto n : r->received) {
                        BROADCASTER_REQUIRE(static_cast<std::size_t>(n) < got.size());
                        got[static_cast<std::size_t>(n)] = true;
                    }
                    std::size_t lost = 0;
                    for (std::size_t i = 0; i < s.records.size(); ++i) {
                        const auto& rec = s.records[i];
                        if (!rec.ok || got[i]) {
                            continue;
                        }
                        ++lost;
                        // Lost: only a publish that overlapped the window.
                        EXPECT_TRUE(rec.acked >= changed_at && rec.started <= resumed)
                            << "message " << i << " lost outside the window";
                    }
                    std::cout << "  receiver: " << r->received.size() << " received, " << lost
                              << " lost in the window\n";
                }
            } catch (...) {
                failure = std::current_exception();
            }
            if (failure) {
                s.stopping = true;
                co_await eventually([&] { return stream_done; }, 40s);
            }
            first.sub.reset();
            second.sub.reset();
            if (failure) {
                std::rethrow_exception(failure);
            }
        },
        180s);
}

TEST(redis_cluster_chaos, a_publisher_with_a_stale_map_follows_moved) {
    wait_cluster_settled(chaos());
    const auto masters = master_ports(chaos());
    run_async_test([&](asio::io_context& io) -> asio::awaitable<void> {
        broadcast publisher(io, chaos_url(masters[0]));
        co_await publisher.async_connect(use_awaitable);
        const auto channel = unique_name("moved");
        const int slot = detail::hash_slot(channel);
        const auto from = *slot_owner(masters[0], slot);
        co_await publisher.async_publish(channel, "before", use_awaitable);  // map read, link open
        unsigned short to = masters[0] == from ? masters[1] : masters[0];
        move_slot(chaos(), slot, to);

        // A subscriber that knows the new map; the publisher does not yet.
        broadcast reader(io, chaos_url(to));
        co_await reader.async_connect(use_awaitable);
        auto sub = co_await reader.async_subscribe(channel, use_awaitable);
        co_await publish_numbered(publisher, channel, 200);
        for (int i = 0; i < 200; ++i) {
            EXPECT_EQ((co_await receive(sub)).message(), std::to_string(i));
        }
    });
}

TEST(redis_cluster_chaos, subscribers_follow_a_slot_moved_during_a_stream) {
    stream_through_a_change([](const std::vector<unsigned short>& masters) { return masters[0]; },
                            [](unsigned short victim, int slot) {
                                const auto masters = master_ports(chaos());
                                const auto to = masters[0] == victim ? masters[1] : masters[0];
                                move_slot(chaos(), slot, to);
                                wait_cluster_settled(chaos());
                            },
                            "slot move");
}

TEST(redis_cluster_chaos, subscribers_resume_after_a_master_is_killed) {
    stream_through_a_change([](const std::vector<unsigned short>& masters) { return masters[1]; },
                            [](unsigned short victim, int slot) {
                                ::kill(node_pid(victim), SIGKILL);
                                // Its replica takes over: another node serves the slot, seen from
                                // the others.
                                std::vector<unsigned short> survivors;
                                for (const auto port : chaos().ports()) {
                                    if (port != victim) {
                                        survivors.push_back(port);
                                    }
                                }
                                wait_until(
                                    [&] {
                                        for (const auto port : survivors) {
                                            const auto owner = slot_owner(port, slot);
                                            if (!owner || *owner == victim) {
                                                return false;
                                            }
                                        }
                                        return true;
                                    },
                                    "the replica to take over", std::chrono::seconds(60));
                                // Back as a replica of its successor.
                                ::kill(chaos().supervisor(), SIGUSR1);
                                wait_cluster_settled(chaos());
                            },
                            "failover");
}

// How many times the node on `port` read from its clients' sockets.
long total_reads(unsigned short port) {
    const auto info = redis_cli(port, {"info", "stats"});
    const auto at = info.find("total_reads_processed:");
    if (at == std::string::npos) {
        throw std::runtime_error("no total_reads_processed from node " + std::to_string(port));
    }
    return std::stol(info.substr(at + 22));
}

// Subscribing many channels at once writes each shard's SSUBSCRIBEs in one batch and
// waits for their replies once: each master reads them in a few reads (of up to 16 KB),
// not one per channel (as it would if each waited for the reply to the one before).
TEST(redis_cluster_chaos, subscribing_many_channels_takes_one_round_trip_per_shard) {
    wait_cluster_settled(chaos());
    const auto masters = master_ports(chaos());
    constexpr std::size_t per_master = 1000;
    const auto by_master = channels_on_every_master(chaos(), unique_name("batch"), per_master);
    std::vector<std::string> all;
    for (const auto& [port, names] : by_master) {
        all.insert(all.end(), names.begin(), names.end());
    }
    run_async_test([&](asio::io_context& io) -> asio::awaitable<void> {
        broadcast bc(io, chaos_url(masters[0]));
        co_await bc.async_connect(use_awaitable);
        std::map<unsigned short, long> before;
        for (const auto port : masters) {
            before[port] = total_reads(port);
        }
        const channel_list channels(all);
        auto sub = co_await bc.async_subscribe(channels, use_awaitable);
        for (const auto port : masters) {
            // Opening the connection, the batch, the replicas' acknowledgements and the
            // counting itself: far fewer than the channels.
            const auto reads = total_reads(port) - before[port];
            EXPECT_LT(reads, 100) << "master " << port << " read " << reads << " times for "
                                  << per_master << " channels";
        }
    });
}

// Gives `slot` back to its master at the end of a test that took it from every node,
// whatever happens (a failing publish could outlive the test's coroutine).
struct give_back {
    unsigned short owner;
    std::string slot;
    ~give_back() {
        redis_cli(owner, {"cluster", "addslots", slot});  // refused if it was not taken
        wait_cluster_settled(chaos());
    }
};

// A publish whose slot no master serves (CLUSTER DELSLOTS on every node: -CLUSTERDOWN,
// then a slot map without it) waits for one, at most publish_timeout_ms, and then
// fails with reconnect_timeout; or, when its node did not answer the written publish
// within that time (seen once on a loaded machine), with connection_lost, as any
// written publish without an answer does. Never later.
TEST(redis_cluster_chaos, a_publish_waits_for_a_slot_without_a_master_at_most_its_timeout) {
    wait_cluster_settled(chaos());
    const auto masters = master_ports(chaos());
    const auto channel = unique_name("orphan");
    const auto slot = std::to_string(detail::hash_slot(channel));
    const auto owner = *slot_owner(masters[0], detail::hash_slot(channel));
    const give_back restore{owner, slot};
    // Outlive the publisher, whose destructor may still complete the publish.
    std::optional<boost::system::error_code> result;
    clock::time_point finished;
    run_async_test([&](asio::io_context& io) -> asio::awaitable<void> {
        broadcast publisher(io, "redis-cluster://127.0.0.1:" + std::to_string(masters[0]) +
                                    "?publish_timeout_ms=500");
        co_await publisher.async_connect(use_awaitable);
        co_await publisher.async_publish(channel, "before", use_awaitable);  // link open
        for (const auto port : chaos().ports()) {
            redis_cli(port, {"cluster", "delslots", slot});
        }
        const auto started = clock::now();
        publisher.async_publish(channel, "orphan", [&](boost::system::error_code ec) {
            result = ec;
            finished = clock::now();
        });
        co_await eventually([&] { return result.has_value(); }, 10s);
        EXPECT_TRUE(*result == error::reconnect_timeout || *result == error::connection_lost)
            << result->message();
        EXPECT_GE(finished - started, 450ms);
        EXPECT_LT(finished - started, 5s);
    });
}

// A publish still waiting (here: its slot has no master, and the instance waits to
// subscribe its channel there again) can be cancelled: it completes at once with
// operation_aborted and is never sent, while the one made after it is.
TEST(redis_cluster_chaos, a_cancelled_waiting_publish_completes_at_once_and_is_never_sent) {
    wait_cluster_settled(chaos());
    const auto masters = master_ports(chaos());
    const auto channel = unique_name("cancel-waiting");
    const auto slot = std::to_string(detail::hash_slot(channel));
    const auto owner = *slot_owner(masters[0], detail::hash_slot(channel));
    const give_back restore{owner, slot};
    // Outside the coroutine: the handlers (and the slot) may be used after it ends, on
    // a failure.
    std::optional<boost::system::error_code> cancelled;
    std::optional<boost::system::error_code> kept;
    asio::cancellation_signal cancel;
    run_async_test(
        [&](asio::io_context& io) -> asio::awaitable<void> {
            broadcast bc(io, "redis-cluster://127.0.0.1:" + std::to_string(masters[0]) +
                                 "?publish_timeout_ms=60000&reconnect_max_ms=200");
            state_log log;
            log.attach(bc);
            co_await bc.async_connect(use_awaitable);
            auto sub = co_await bc.async_subscribe(channel, use_awaitable);
            for (const auto port : chaos().ports()) {
                redis_cli(port, {"cluster", "delslots", slot});
            }
            // The master let go of the channel (a pushed sunsubscribe): publishes of its
            // slot wait until it is subscribed again.
            co_await eventually([&] { return log.saw(connection_state::reconnecting); }, 10s);

            bc.async_publish(
                channel, "cancelled",
                asio::bind_cancellation_slot(
                    cancel.slot(), [&](boost::system::error_code ec) { cancelled = ec; }));
            bc.async_publish(channel, "kept", [&](boost::system::error_code ec) { kept = ec; });
            cancel.emit(asio::cancellation_type::terminal);
            // Far sooner than the publish timeout (60 s), with the slot still unserved.
            co_await eventually([&] { return cancelled.has_value(); }, 10s);
            EXPECT_EQ(*cancelled, asio::error::operation_aborted) << cancelled->message();
            EXPECT_FALSE(kept.has_value());

            redis_cli(owner, {"cluster", "addslots", slot});
            co_await eventually([&] { return kept.has_value(); }, 30s);
            EXPECT_FALSE(*kept) << kept->message();
            for (;;) {
                const auto ev = co_await receive(sub, 10s);
                EXPECT_NE(ev.message(), "cancelled");
                if (ev.message() == "kept") {
                    break;
                }
            }
            EXPECT_EQ(bc.stats().published, 1u);
        },
        60s);
}

}  // namespace
}  // namespace broadcaster::test
