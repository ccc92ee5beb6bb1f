// Fan-out of the memory backend: one publisher, 1 / 100 / 10,000 subscribers on one
// channel, 64-byte messages, everything on one thread (one core).
//
//   build/bench/bench_memory_fanout                   # all benchmarks
//   build/bench/bench_memory_fanout --benchmark_filter=throughput
//
// throughput: deliveries per second (one event queued to one subscriber and taken
//   out by it), publishing in bursts so subscribers drain many events per wake-up.
// latency: one message at a time, publish -> each subscriber's handler, p50/p99 over
//   every delivery.
// idle_subscriber_memory: heap bytes one more idle subscriber costs.

#include "latency.hpp"

#include <broadcaster/broadcaster.hpp>

#include <benchmark/benchmark.h>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>

#include <malloc.h>

#include <algorithm>
#include <chrono>

namespace {

namespace asio = boost::asio;
using boost::system::error_code;

constexpr std::size_t message_size = 64;
constexpr int burst = 64;

// A broadcast on a single-threaded io_context with `n` subscribers on one channel,
// each drained by a receive loop that takes every queued event per wake-up.
class fanout_rig {
  public:
    explicit fanout_rig(int n) : bc_(io_, "memory://") {
        bc_.async_connect([](error_code) {});
        io_.run();
        io_.restart();
        for (int i = 0; i < n; ++i) {
            bc_.async_subscribe("bench", [this](error_code ec, broadcaster::subscriber sub) {
                if (!ec) {
                    subs_.push_back(std::move(sub));
                }
            });
        }
        io_.run();
        io_.restart();
        for (std::size_t i = 0; i < subs_.size(); ++i) {
            receive(i);
        }
    }

    ~fanout_rig() {
        subs_.clear();
        io_.run();
    }

    // Publishes `count` messages and runs until every subscriber has taken all of them.
    void publish_and_drain(int count, const std::string& message) {
        target_ += static_cast<std::uint64_t>(count) * subs_.size();
        for (int i = 0; i < count; ++i) {
            bc_.async_publish("bench", message, [](error_code) {});
        }
        while (taken_ < target_) {
            io_.run_one();
        }
    }

    std::uint64_t taken() const { return taken_; }
    std::vector<double>& latencies_us() { return latencies_us_; }
    void record_latency(bool on) { record_ = on; }

  private:
    void receive(std::size_t i) {
        subs_[i].async_receive([this, i](error_code ec, broadcaster::event ev) {
            if (ec) {
                return;
            }
            take(ev);
            batch_.clear();
            subs_[i].try_receive_some(batch_);
            for (const auto& queued : batch_) {
                take(queued);
            }
            receive(i);
        });
    }

    void take(const broadcaster::event& ev) {
        ++taken_;
        if (record_) {
            latencies_us_.push_back(bench::age_us(ev.message()));
        }
        benchmark::DoNotOptimize(ev.message().data());
    }

    asio::io_context io_{1};
    broadcaster::broadcast bc_;
    std::vector<broadcaster::subscriber> subs_;
    std::vector<broadcaster::event> batch_;
    std::uint64_t target_ = 0;
    std::uint64_t taken_ = 0;
    bool record_ = false;
    std::vector<double> latencies_us_;
};

void throughput(benchmark::State& state) {
    fanout_rig rig(static_cast<int>(state.range(0)));
    const std::string message(message_size, 'm');
    for (auto _ : state) {
        rig.publish_and_drain(burst, message);
    }
    state.counters["deliveries/s"] =
        benchmark::Counter(static_cast<double>(rig.taken()), benchmark::Counter::kIsRate);
    state.counters["publishes/s"] = benchmark::Counter(
        static_cast<double>(state.iterations()) * burst, benchmark::Counter::kIsRate);
}
BENCHMARK(throughput)->ArgName("subscribers")->Arg(1)->Arg(100)->Arg(10'000)->UseRealTime();

void latency(benchmark::State& state) {
    fanout_rig rig(static_cast<int>(state.range(0)));
    rig.record_latency(true);
    std::string message(message_size, 'm');
    for (auto _ : state) {
        bench::stamp(message);
        rig.publish_and_drain(1, message);
    }
    auto& samples = rig.latencies_us();
    state.counters["p50_us"] = bench::percentile(samples, 0.50);
    state.counters["p99_us"] = bench::percentile(samples, 0.99);
}
BENCHMARK(latency)->ArgName("subscribers")->Arg(1)->Arg(100)->Arg(10'000)->UseRealTime();

void idle_subscriber_memory(benchmark::State& state) {
    constexpr int n = 10'000;
    for (auto _ : state) {
        asio::io_context io;
        broadcaster::broadcast bc(io, "memory://");
        bc.async_connect([](error_code) {});
        io.run();
        io.restart();
        std::vector<broadcaster::subscriber> subs;
        subs.reserve(n + 1);
        // The channel's own entry is paid by the first subscriber; measure the rest.
        bc.async_subscribe(
            "idle", [&](error_code, broadcaster::subscriber s) { subs.push_back(std::move(s)); });
        io.run();
        io.restart();
        const auto before = mallinfo2().uordblks;
        for (int i = 0; i < n; ++i) {
            bc.async_subscribe("idle", [&](error_code, broadcaster::subscriber s) {
                subs.push_back(std::move(s));
            });
        }
        io.run();
        io.restart();
        const auto after = mallinfo2().uordblks;
        state.counters["bytes/subscriber"] = static_cast<double>(after - before) / n;
        subs.clear();
        io.run();
    }
}
BENCHMARK(idle_subscriber_memory)->Iterations(1);

}  // namespace

BENCHMARK_MAIN();
