// `broadcaster bench`: publishers and subscribers through the library against one
// backend; publish throughput, deliveries/s, loss and publish->receive latency.

#include "commands.hpp"
#include "latency.hpp"  // bench/

#include <broadcaster/broadcast.hpp>
#include <broadcaster/error.hpp>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <unistd.h>
#include <algorithm>
#include <cmath>
#include <iomanip>
#include <iostream>
#include <sstream>

namespace cli {

namespace {

namespace asio = boost::asio;
using boost::system::error_code;
using clock_type = std::chrono::steady_clock;

class bench_run {
  public:
    bench_run(asio::io_context& io, broadcaster::broadcast& bc, const bench_options& options)
        : io_(io), work_(io.get_executor()), bc_(bc), options_(options), progress_(io), pace_(io) {}

    int run() {
        if (!connect()) {
            return exit_;
        }
        if (!subscribe()) {
            return exit_;
        }
        start_ = clock_type::now();
        show_progress();
        publish_more();
        run_until([&] { return finished_publishing() || exit_ != ok; });
        publish_end_ = clock_type::now();
        // Let the last deliveries arrive; what has not come once they stop for two
        // seconds is lost.
        auto seen = delivered_;
        auto last_progress = clock_type::now();
        run_until([&] {
            if (delivered_ != seen) {
                seen = delivered_;
                last_progress = clock_type::now();
            }
            return delivered_ >= expected_ ||
                   clock_type::now() - last_progress > std::chrono::seconds(2);
        });
        end_ = clock_type::now();
        progress_.cancel();
        if (tty_) {
            std::cerr << "\r\033[K" << std::flush;
        }
        if (exit_ != ok) {
            return exit_;
        }
        print();
        return failed_ ? refused : ok;
    }

  private:
    template <typename Predicate>
    void run_until(Predicate done) {
        while (!done()) {
            io_.run_one_for(std::chrono::milliseconds(50));
        }
    }

    bool connect() {
        bool done = false;
        bc_.async_connect([&](error_code ec) {
            done = true;
            if (ec) {
                report("cannot connect to " + bc_.url() + ": " + ec.message());
                exit_ = status_for(ec, true);
            }
        });
        run_until([&] { return done; });
        return exit_ == ok;
    }

    bool subscribe() {
        for (int c = 0; c < options_.channels; ++c) {
            channels_.push_back("bench-" + std::to_string(::getpid()) + "-" + std::to_string(c));
        }
        subscribers_per_channel_.assign(channels_.size(), 0);
        int pending = options_.subscribers;
        for (int i = 0; i < options_.subscribers; ++i) {
            const auto channel = static_cast<std::size_t>(i) % channels_.size();
            ++subscribers_per_channel_[channel];
            bc_.async_subscribe(channels_[channel], broadcaster::subscribe_options(1 << 16),
                                [this, &pending](error_code ec, broadcaster::subscriber sub) {
                                    --pending;
                                    if (ec) {
                                        report("cannot subscribe: " + ec.message());
                                        exit_ = status_for(ec, false);
                                        return;
                                    }
                                    subs_.push_back(std::move(sub));
                                    receive(subs_.size() - 1);
                                });
        }
        run_until([&] { return pending == 0; });
        return exit_ == ok;
    }

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
        ++delivered_;
        latencies_us_.push_back(static_cast<float>(bench::age_us(ev.message())));
    }

    bool time_is_up() const {
        return options_.duration > 0 &&
               clock_type::now() - start_ >= std::chrono::duration<double>(options_.duration);
    }

    bool finished_publishing() const {
        const bool all_sent = options_.duration > 0 ? stopped_sending_ : sent_ >= options_.count;
        return all_sent && acked_ + failed_ == sent_;
    }

    // Sends what the window (or the rate) allows now.
    void publish_more() {
        if (stopped_sending_) {
            return;
        }
        // Checked on every pacing tick, not only when a message is due: at a low rate
        // the next one may be due long after the duration ran out.
        if (time_is_up()) {
            stopped_sending_ = true;
            return;
        }
        std::uint64_t allowed = 0;
        if (options_.rate > 0) {
            const std::chrono::duration<double> elapsed = clock_type::now() - start_;
            const auto owed = static_cast<std::uint64_t>(elapsed.count() * options_.rate) + 1;
            allowed = owed > sent_ ? owed - sent_ : 0;
        } else {
            const std::uint64_t window = 256 * static_cast<std::uint64_t>(options_.publishers);
            const auto in_flight = sent_ - acked_ - failed_;
            allowed = in_flight < window ? window - in_flight : 0;
        }
        for (std::uint64_t i = 0; i < allowed; ++i) {
            if (time_is_up() || (options_.duration <= 0 && sent_ >= options_.count)) {
                stopped_sending_ = true;
                break;
            }
            send_one();
        }
        if (options_.rate > 0 && !stopped_sending_) {
            pace_.expires_after(std::chrono::milliseconds(1));
            pace_.async_wait([this](error_code ec) {
                if (!ec) {
                    publish_more();
                }
            });
        }
    }

    void send_one() {
        const auto channel = sent_ % channels_.size();
        expected_ += subscribers_per_channel_[channel];
        std::string message(options_.size, 'x');
        bench::stamp(message);  // the send time first, as text
        if (options_.binary && sent_ % 2 == 0 && message.size() > bench::stamp_size) {
            message[bench::stamp_size] = '\xff';  // not UTF-8 (Postgres: via the table)
        }
        ++sent_;
        bc_.async_publish(channels_[channel], std::move(message), [this](error_code ec) {
            if (ec) {
                if (!failed_++) {
                    first_error_ = ec;
                }
            } else {
                ++acked_;
            }
            if (options_.rate <= 0) {
                publish_more();
            }
        });
    }

    void show_progress() {
        tty_ = ::isatty(STDERR_FILENO) == 1;
        if (!tty_) {
            return;
        }
        progress_.expires_after(std::chrono::milliseconds(200));
        progress_.async_wait([this](error_code ec) {
            if (ec) {
                return;
            }
            const std::chrono::duration<double> elapsed = clock_type::now() - start_;
            const double done = options_.duration > 0
                                    ? elapsed.count() / options_.duration
                                    : static_cast<double>(acked_) / options_.count;
            const int width = 30;
            const int filled = std::clamp(static_cast<int>(done * width), 0, width);
            std::cerr << "\r[" << std::string(filled, '#') << std::string(width - filled, '.')
                      << "] " << std::setw(3) << static_cast<int>(std::min(done, 1.0) * 100)
                      << "%  " << static_cast<long>(acked_ / std::max(elapsed.count(), 1e-9))
                      << " msg/s  " << delivered_ << " delivered" << std::flush;
            show_progress();
        });
    }

    void print() {
        const std::chrono::duration<double> publishing = publish_end_ - start_;
        const std::chrono::duration<double> total = end_ - start_;
        const double publish_rate = acked_ / std::max(publishing.count(), 1e-9);
        const double delivery_rate = delivered_ / std::max(total.count(), 1e-9);
        const auto lost = expected_ > delivered_ ? expected_ - delivered_ : 0;
        const auto at = [&](double q) { return bench::percentile(latencies_us_, q); };
        std::uint64_t dropped = 0;
        for (const auto& sub : subs_) {
            dropped += sub.dropped();
        }
        if (options_.json) {
            std::cout << std::fixed << std::setprecision(1) << "{\"url\":" << json_string(bc_.url())
                      << ",\"publishers\":" << options_.publishers
                      << ",\"subscribers\":" << options_.subscribers
                      << ",\"channels\":" << options_.channels << ",\"size\":" << options_.size
                      << ",\"published\":" << acked_ << ",\"failed\":" << failed_
                      << ",\"publish_per_second\":" << publish_rate
                      << ",\"delivered\":" << delivered_ << ",\"expected\":" << expected_
                      << ",\"lost\":" << lost << ",\"dropped\":" << dropped
                      << ",\"deliveries_per_second\":" << delivery_rate
                      << ",\"latency_us\":{\"p50\":" << at(0.5) << ",\"p90\":" << at(0.9)
                      << ",\"p99\":" << at(0.99) << ",\"max\":" << at(1.0) << "}}\n";
            return;
        }
        std::cout << std::fixed << std::setprecision(1) << "backend      " << bc_.url() << "\n"
                  << "load         " << options_.publishers << " publisher(s), "
                  << options_.subscribers << " subscriber(s), " << options_.channels
                  << " channel(s), " << options_.size << "-byte messages\n"
                  << "published    " << acked_ << " in " << publishing.count()
                  << " s: " << static_cast<long>(publish_rate) << " msg/s"
                  << (failed_ ? " (" + std::to_string(failed_) +
                                    " failed: " + first_error_.message() + ")"
                              : "")
                  << "\n"
                  << "delivered    " << delivered_ << " of " << expected_ << ": "
                  << static_cast<long>(delivery_rate) << " deliveries/s, " << lost << " lost ("
                  << dropped << " dropped by full queues)\n"
                  << "latency      p50 " << at(0.5) << " us, p90 " << at(0.9) << " us, p99 "
                  << at(0.99) << " us, max " << at(1.0) << " us\n";
    }

    asio::io_context& io_;
    // Keeps run_one_for() running while nothing is pending (memory:// has no sockets).
    asio::executor_work_guard<asio::io_context::executor_type> work_;
    broadcaster::broadcast& bc_;
    const bench_options& options_;
    asio::steady_timer progress_;
    asio::steady_timer pace_;
    bool tty_ = false;
    int exit_ = ok;
    std::vector<std::string> channels_;
    std::vector<std::uint64_t> subscribers_per_channel_;
    std::vector<broadcaster::subscriber> subs_;
    std::vector<broadcaster::event> batch_;
    std::vector<float> latencies_us_;
    clock_type::time_point start_, publish_end_, end_;
    bool stopped_sending_ = false;
    std::uint64_t sent_ = 0, acked_ = 0, failed_ = 0, expected_ = 0, delivered_ = 0;
    error_code first_error_;
};

}  // namespace

int bench(const bench_options& options) {
    asio::io_context io(1);
    std::unique_ptr<broadcaster::broadcast> bc;
    try {
        bc = std::make_unique<broadcaster::broadcast>(io, options.url);
    } catch (const boost::system::system_error& e) {
        report(e.what());
        return status_for(e.code(), false);
    }
    bench_run run(io, *bc, options);
    return run.run();
}

}  // namespace cli
