// Every public function may be called from any thread: hammer one broadcast from
// several threads of a multi-threaded io_context (run under ThreadSanitizer in CI).

#include "counting_backend.hpp"
#include "test_support.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_future.hpp>

namespace broadcaster::test {
namespace {

using boost::system::error_code;

TEST(threading, publishers_and_subscribers_on_many_threads) {
    asio::thread_pool pool(4);
    broadcast bc(pool.get_executor(), "memory://");
    bc.async_connect(asio::use_future).get();

    constexpr int publishers = 4;
    constexpr int per_publisher = 2000;
    std::vector<subscriber> subs;
    for (int i = 0; i < 4; ++i) {
        subs.push_back(bc.async_subscribe("busy", subscribe_options{publishers * per_publisher, {}},
                                          asio::use_future)
                           .get());
    }

    // Subscribers coming and going on other threads meanwhile.
    std::atomic<bool> stop{false};
    std::thread churn([&] {
        while (!stop) {
            auto sub = bc.async_subscribe({"busy", "other"}, asio::use_future).get();
            (void)sub.try_receive();
        }
    });

    std::vector<std::thread> threads;
    for (int p = 0; p < publishers; ++p) {
        threads.emplace_back([&, p] {
            for (int i = 0; i < per_publisher; ++i) {
                bc.async_publish("busy", std::to_string(p) + ":" + std::to_string(i),
                                 asio::use_future)
                    .get();
            }
        });
    }

    // Each subscriber, drained on its own thread, sees every publisher's order kept.
    std::vector<std::thread> readers;
    for (auto& sub : subs) {
        readers.emplace_back([&sub] {
            std::vector<int> next(publishers, 0);
            for (int n = 0; n < publishers * per_publisher; ++n) {
                auto ev = sub.receive_for(10s);
                ASSERT_TRUE(ev) << "missing event " << n;
                const auto text = std::string(ev->message());
                const auto colon = text.find(':');
                const int p = std::stoi(text.substr(0, colon));
                EXPECT_EQ(std::stoi(text.substr(colon + 1)), next[p]++);
            }
        });
    }
    for (auto& t : threads) {
        t.join();
    }
    for (auto& t : readers) {
        t.join();
    }
    stop = true;
    churn.join();
    EXPECT_EQ(bc.stats().published, static_cast<std::uint64_t>(publishers * per_publisher));

    // Destroying subscribers from a foreign thread while a receive is pending.
    std::promise<error_code> aborted;
    subs[0].async_receive([&](error_code ec, event) { aborted.set_value(ec); });
    std::thread([&] { subs.clear(); }).join();
    EXPECT_EQ(aborted.get_future().get(), asio::error::operation_aborted);

    bc.async_disconnect(asio::use_future).get();
    pool.join();
}

TEST(threading, coroutines_on_a_multithreaded_io_context) {
    run_async_test(
        [&](asio::io_context& io) -> asio::awaitable<void> {
            broadcast bc(io, "memory://threads");
            co_await bc.async_connect(asio::use_awaitable);
            auto sub = co_await bc.async_subscribe("t", asio::use_awaitable);
            for (int i = 0; i < 1000; ++i) {
                co_await bc.async_publish("t", std::to_string(i), asio::use_awaitable);
                EXPECT_EQ((co_await sub.async_receive(asio::use_awaitable)).message(),
                          std::to_string(i));
            }
        },
        30s, 4);
}

// Issue 11, item 4: state observer calls used to be posted to the (multi-threaded)
// executor one by one, so they ran concurrently and out of order, and an app keeping
// the latest state could end up believing it was still reconnecting.
TEST(threading, observer_calls_run_one_at_a_time_in_order_on_4_threads) {
    asio::thread_pool pool(4);
    auto calls = std::make_shared<backend_calls>();
    auto owned = std::make_unique<counting_backend>(calls);
    auto* backend = owned.get();
    broadcast bc(pool.get_executor(), std::move(owned));

    std::mutex mutex;
    std::vector<connection_state> seen;
    std::atomic<int> running{0};
    std::atomic<bool> overlapped{false};
    bc.on_state_change([&](connection_state state, error_code) {
        if (running.fetch_add(1) != 0) {
            overlapped = true;
        }
        // Stay a little, so that a concurrent call would overlap this one.
        const auto until = std::chrono::steady_clock::now() + 20us;
        while (std::chrono::steady_clock::now() < until) {
        }
        {
            std::lock_guard lock(mutex);
            seen.push_back(state);
        }
        running.fetch_sub(1);
    });
    bc.async_connect(asio::use_future).get();
    constexpr int reconnects = 300;
    for (int i = 0; i < reconnects; ++i) {
        backend->simulate_reconnect();
    }
    // 2 + 2 per reconnect changes; wait for the last without sleeping on a guess.
    const auto until = std::chrono::steady_clock::now() + 20s;
    for (;;) {
        {
            std::lock_guard lock(mutex);
            if (seen.size() == 2 + 2 * reconnects) {
                break;
            }
        }
        ASSERT_LT(std::chrono::steady_clock::now(), until) << "observer calls missing";
        std::this_thread::yield();
    }
    EXPECT_FALSE(overlapped) << "two observer calls ran at once";
    std::lock_guard lock(mutex);
    ASSERT_EQ(seen[0], connection_state::connecting);
    ASSERT_EQ(seen[1], connection_state::connected);
    for (int i = 0; i < reconnects; ++i) {
        ASSERT_EQ(seen[2 + 2 * i], connection_state::reconnecting) << "call " << 2 + 2 * i;
        ASSERT_EQ(seen[3 + 2 * i], connection_state::connected) << "call " << 3 + 2 * i;
    }
    EXPECT_EQ(bc.stats().reconnects, static_cast<std::uint64_t>(reconnects));
}

}  // namespace
}  // namespace broadcaster::test
