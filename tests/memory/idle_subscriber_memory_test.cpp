// What an idle subscriber costs: its state, its entry in the broadcast's fan-out, and a
// receive waiting on an io_context, as a WebSocket server's client holds one for its
// lifetime. Counted by this executable's own operator new, so it is alone in it.

#include "wakeup_support.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <new>

namespace {

std::atomic<long long> live_bytes{0};

// Each block carries its size in front, so that delete knows what to subtract.
constexpr std::size_t header = alignof(std::max_align_t);

void* counted_new(std::size_t size) {
    auto* block = static_cast<unsigned char*>(std::malloc(size + header));
    if (block == nullptr) {
        throw std::bad_alloc();
    }
    *reinterpret_cast<std::size_t*>(block) = size;
    live_bytes.fetch_add(static_cast<long long>(size), std::memory_order_relaxed);
    return block + header;
}

void counted_delete(void* p) noexcept {
    if (p == nullptr) {
        return;
    }
    auto* block = static_cast<unsigned char*>(p) - header;
    live_bytes.fetch_sub(static_cast<long long>(*reinterpret_cast<std::size_t*>(block)),
                         std::memory_order_relaxed);
    std::free(block);
}

}  // namespace

void* operator new(std::size_t size) {
    return counted_new(size);
}
void* operator new[](std::size_t size) {
    return counted_new(size);
}
// The nothrow forms too (Asio's type-erased executors use them): libstdc++'s call the
// forms above, but a sanitizer's runtime allocates them itself, and this delete would
// then read a header that is not there.
void* operator new(std::size_t size, const std::nothrow_t&) noexcept {
    try {
        return counted_new(size);
    } catch (const std::bad_alloc&) {
        return nullptr;
    }
}
void* operator new[](std::size_t size, const std::nothrow_t&) noexcept {
    try {
        return counted_new(size);
    } catch (const std::bad_alloc&) {
        return nullptr;
    }
}
void operator delete(void* p, const std::nothrow_t&) noexcept {
    counted_delete(p);
}
void operator delete[](void* p, const std::nothrow_t&) noexcept {
    counted_delete(p);
}
void operator delete(void* p) noexcept {
    counted_delete(p);
}
void operator delete[](void* p) noexcept {
    counted_delete(p);
}
void operator delete(void* p, std::size_t) noexcept {
    counted_delete(p);
}
void operator delete[](void* p, std::size_t) noexcept {
    counted_delete(p);
}

namespace broadcaster::test {
namespace {

// Subscribes `count` subscribers to `channel` of the connected `bc`, running `io` only
// until they are (a receive may be waiting on it meanwhile).
std::vector<subscriber> subscribe_more(asio::io_context& io, broadcast& bc, int count) {
    std::vector<subscriber> subs;
    for (int i = 0; i < count; ++i) {
        bc.async_subscribe("room", [&](boost::system::error_code ec, subscriber sub) {
            EXPECT_FALSE(ec) << ec.message();
            subs.push_back(std::move(sub));
        });
    }
    while (static_cast<int>(subs.size()) < count && io.run_one() > 0) {
    }
    return subs;
}

// Heap bytes per idle subscriber, for `count` of them each with a receive waiting.
double bytes_per_idle_subscriber(int count) {
    asio::io_context io(1);
    broadcast bc(io.get_executor(), "memory://");
    // The first subscriber makes what all share (the channel, the registry of waiting
    // receives): counted apart.
    auto first = subscribe_all(io, bc, "room", 1);
    int received = 0;
    const auto on_event = [&](boost::system::error_code ec, event) {
        EXPECT_FALSE(ec) << ec.message();
        ++received;
    };
    first.front().async_receive(on_event);
    io.poll();
    const auto before = live_bytes.load();
    auto subs = subscribe_more(io, bc, count);
    for (auto& sub : subs) {
        sub.async_receive(on_event);
    }
    io.poll();
    const auto after = live_bytes.load();
    bc.async_publish("room", "bye", [](boost::system::error_code) {});  // ends the waits
    io.restart();
    io.run();
    EXPECT_EQ(received, count + 1);
    return static_cast<double>(after - before) / count;
}

// A WebSocket server holds one subscriber per client for as long as the client stays:
// at 10,000 clients every byte here is 10 KB. What it holds (x86-64, libstdc++): the
// state (432 bytes: the queue empty, one executor for the waiting receive, no
// condition variable until a blocking receive), its shared_ptr control block, its
// channel name, the fan-out's and the waiting-receive registry's entries, and the
// waiting handler: 627 bytes in all. Before the executors shared a variant and the
// condition variable was made on demand, 731.
TEST(idle_subscriber_memory, an_idle_subscriber_with_a_waiting_receive_stays_small) {
    const double per_subscriber = bytes_per_idle_subscriber(1000);
    RecordProperty("bytes_per_idle_subscriber", std::to_string(per_subscriber));
    EXPECT_LE(per_subscriber, 680.0);
    EXPECT_GT(per_subscriber, 400.0);  // it counts what it should: at least the state
}

// Heap bytes per waiting event per subscriber, for `subscribers` that receive nothing
// while `events` are published: each holds every event in its queue, the event's own
// data shared by all.
double bytes_per_queued_event(int subscribers, int events) {
    asio::io_context io(1);
    broadcast bc(io.get_executor(), "memory://");
    auto subs = subscribe_all(io, bc, "room", 1);
    auto more = subscribe_more(io, bc, subscribers - 1);
    const auto before = live_bytes.load();
    for (int i = 0; i < events; ++i) {
        bc.async_publish("room", "m",
                         [](boost::system::error_code ec) { EXPECT_FALSE(ec) << ec.message(); });
    }
    io.restart();
    io.run();
    EXPECT_EQ(subs.front().queued(), static_cast<std::size_t>(events));
    const auto after = live_bytes.load();
    return static_cast<double>(after - before) / (static_cast<double>(subscribers) * events);
}

// A room whose clients fall behind holds every message it has not sent them once per
// client: in a 100-client flood, about 1,000 each. A queue slot is an event, one
// pointer; it was a shared_ptr, two (17.1 bytes per queued event and subscriber here,
// with the events' own data).
TEST(idle_subscriber_memory, a_queued_event_costs_a_subscriber_one_pointer) {
    const double per_slot = bytes_per_queued_event(100, 512);
    RecordProperty("bytes_per_queued_event", std::to_string(per_slot));
    EXPECT_LE(per_slot, 12.0);
    EXPECT_GE(per_slot, 8.0);  // it counts what it should: at least the slots
}

}  // namespace
}  // namespace broadcaster::test
