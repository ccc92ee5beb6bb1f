// NATS backend figures beside plain nats.c on the same nats-server
// (bench/nats_bench.sh starts the server and runs this).
//
//   bench_nats nats://host:port [messages]
//
// publish: `messages` publishes, one connection, one thread.
//   broadcast: through the backend, up to 4096 in flight; each completes when the
//     server has confirmed it (a PING/PONG behind it).
//   nats.c: natsConnection_Publish in a loop, then one flush (the server has them all);
//     and, for the same guarantee as the broadcast's, a flush after each publish.
// delivery: a plain nats.c publisher floods `messages`; the rate one subscriber takes
//   them in, first publish to last receipt. nats.c: an async subscription (its delivery
//   thread, a callback per message). broadcast: a subscriber receiving on the io thread.
// latency: publish -> receive, one message every 500 us, through each.
// Each figure is the median of three runs.

#include "latency.hpp"

#include <broadcaster/broadcaster.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <nats/nats.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <functional>
#include <iostream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace {

namespace asio = boost::asio;
using bench::clock_type;
using bench::percentile;
using boost::system::error_code;

constexpr int runs = 3;
constexpr int latency_samples = 5000;
const std::string payload = "hello";

template <typename Predicate>
void run_until(asio::io_context& io, Predicate done) {
    while (!done()) {
        io.run_one();
    }
}

void check(natsStatus s, const char* what) {
    if (s != NATS_OK) {
        throw std::runtime_error(std::string(what) + ": " + natsStatus_GetText(s));
    }
}

// A plain nats.c connection (its own threads, default options).
struct nats_connection {
    explicit nats_connection(const std::string& url) {
        check(natsConnection_ConnectTo(&nc, url.c_str()), "nats.c connect");
    }
    ~nats_connection() { natsConnection_Destroy(nc); }
    nats_connection(const nats_connection&) = delete;
    nats_connection& operator=(const nats_connection&) = delete;
    natsConnection* nc = nullptr;
};

// ---- broadcast -----------------------------------------------------------------------

void connect(asio::io_context& io, broadcaster::broadcast& bc) {
    bool connected = false;
    bc.async_connect([&](error_code ec) {
        broadcaster::throw_if_error(ec, "connect");
        connected = true;
    });
    run_until(io, [&] { return connected; });
}

double broadcast_publish_rate(const std::string& url, int messages) {
    asio::io_context io(1);
    broadcaster::broadcast bc(io, url);
    connect(io, bc);
    int sent = 0;
    int done = 0;
    constexpr int window = 4096;
    std::function<void()> send_more;
    const auto on_done = [&](error_code ec) {
        broadcaster::throw_if_error(ec, "publish");
        ++done;
        send_more();
    };
    send_more = [&] {
        while (sent < messages && sent - done < window) {
            ++sent;
            bc.async_publish("bench.publish", payload, on_done);
        }
    };
    const auto start = clock_type::now();
    send_more();
    run_until(io, [&] { return done == messages; });
    return messages / std::chrono::duration<double>(clock_type::now() - start).count();
}

double broadcast_delivery_rate(const std::string& url, int messages) {
    asio::io_context io(1);
    broadcaster::broadcast bc(io, url);
    connect(io, bc);
    std::optional<broadcaster::subscriber> sub;
    broadcaster::subscribe_options options;
    options.capacity = static_cast<std::size_t>(messages);  // the rate, not the policy
    bc.async_subscribe("bench.delivery", options, [&](error_code ec, broadcaster::subscriber s) {
        broadcaster::throw_if_error(ec, "subscribe");
        sub = std::move(s);
    });
    run_until(io, [&] { return sub.has_value(); });
    nats_connection publisher(url.substr(0, url.find('?')));
    int received = 0;
    std::function<void()> receive_next = [&] {
        sub->async_receive([&](error_code ec, broadcaster::event) {
            broadcaster::throw_if_error(ec, "receive");
            if (++received < messages) {
                receive_next();
            }
        });
    };
    receive_next();
    const auto start = clock_type::now();
    std::thread flood([&] {
        for (int i = 0; i < messages; ++i) {
            natsConnection_Publish(publisher.nc, "bench.delivery", payload.data(),
                                   static_cast<int>(payload.size()));
        }
        natsConnection_FlushTimeout(publisher.nc, 30'000);
    });
    run_until(io, [&] { return received == messages; });
    const auto rate = messages / std::chrono::duration<double>(clock_type::now() - start).count();
    flood.join();
    if (sub->dropped() != 0) {
        throw std::runtime_error("the broadcast subscriber dropped messages");
    }
    return rate;
}

std::vector<double> broadcast_latency(const std::string& url) {
    asio::io_context io(1);
    broadcaster::broadcast bc(io, url);
    connect(io, bc);
    std::vector<double> us;
    asio::steady_timer pace(io);
    std::optional<broadcaster::subscriber> sub;
    bc.async_subscribe("bench.latency", [&](error_code ec, broadcaster::subscriber s) {
        broadcaster::throw_if_error(ec, "subscribe");
        sub = std::move(s);
    });
    run_until(io, [&] { return sub.has_value(); });
    std::function<void()> receive_next = [&] {
        sub->async_receive([&](error_code ec, broadcaster::event ev) {
            broadcaster::throw_if_error(ec, "receive");
            us.push_back(bench::age_us(ev.message()));
            if (static_cast<int>(us.size()) < latency_samples) {
                receive_next();
            }
        });
    };
    int published = 0;
    std::function<void()> publish_next = [&] {
        if (published++ == latency_samples) {
            return;
        }
        std::string message;
        bench::stamp(message);
        bc.async_publish("bench.latency", message, [](error_code) {});
        pace.expires_after(std::chrono::microseconds(500));
        pace.async_wait([&](error_code) { publish_next(); });
    };
    receive_next();
    publish_next();
    run_until(io, [&] { return static_cast<int>(us.size()) == latency_samples; });
    return us;
}

// ---- plain nats.c --------------------------------------------------------------------

double nats_c_publish_rate(const std::string& url, int messages) {
    nats_connection c(url);
    const auto start = clock_type::now();
    for (int i = 0; i < messages; ++i) {
        check(natsConnection_Publish(c.nc, "bench.publish", payload.data(),
                                     static_cast<int>(payload.size())),
              "nats.c publish");
    }
    check(natsConnection_FlushTimeout(c.nc, 30'000), "nats.c flush");
    return messages / std::chrono::duration<double>(clock_type::now() - start).count();
}

// Confirmed one by one, as a blocking client would (a flush: PING/PONG after each).
double nats_c_confirmed_publish_rate(const std::string& url, int messages) {
    nats_connection c(url);
    const auto start = clock_type::now();
    for (int i = 0; i < messages; ++i) {
        check(natsConnection_Publish(c.nc, "bench.publish", payload.data(),
                                     static_cast<int>(payload.size())),
              "nats.c publish");
        check(natsConnection_FlushTimeout(c.nc, 30'000), "nats.c flush");
    }
    return messages / std::chrono::duration<double>(clock_type::now() - start).count();
}

// Counts (or times) what an async nats.c subscription delivers, on nats.c's thread.
struct nats_c_receiver {
    std::atomic<int> received{0};
    std::vector<double> ages;  // written by the delivery thread only, read after it is done
    bool timing = false;
    static void on_message(natsConnection*, natsSubscription*, natsMsg* msg, void* closure) {
        auto& self = *static_cast<nats_c_receiver*>(closure);
        if (self.timing) {
            self.ages.push_back(bench::age_us(
                {natsMsg_GetData(msg), static_cast<std::size_t>(natsMsg_GetDataLength(msg))}));
        }
        natsMsg_Destroy(msg);
        self.received.fetch_add(1, std::memory_order_release);
    }
    void wait_for(int n) const {
        while (received.load(std::memory_order_acquire) < n) {
            std::this_thread::sleep_for(std::chrono::microseconds(50));
        }
    }
};

natsSubscription* subscribe(nats_connection& c, const char* subject, nats_c_receiver& r) {
    natsSubscription* sub = nullptr;
    check(natsConnection_Subscribe(&sub, c.nc, subject, nats_c_receiver::on_message, &r),
          "nats.c subscribe");
    check(natsSubscription_SetPendingLimits(sub, -1, -1), "nats.c pending limits");
    check(natsConnection_FlushTimeout(c.nc, 5000), "nats.c flush");  // the SUB is in
    return sub;
}

double nats_c_delivery_rate(const std::string& url, int messages) {
    nats_connection receiver_connection(url);
    nats_connection publisher(url);
    nats_c_receiver receiver;
    auto* sub = subscribe(receiver_connection, "bench.delivery", receiver);
    const auto start = clock_type::now();
    for (int i = 0; i < messages; ++i) {
        natsConnection_Publish(publisher.nc, "bench.delivery", payload.data(),
                               static_cast<int>(payload.size()));
    }
    natsConnection_FlushTimeout(publisher.nc, 30'000);
    receiver.wait_for(messages);
    const auto rate = messages / std::chrono::duration<double>(clock_type::now() - start).count();
    natsSubscription_Destroy(sub);
    return rate;
}

std::vector<double> nats_c_latency(const std::string& url) {
    nats_connection receiver_connection(url);
    nats_connection publisher(url);
    nats_c_receiver receiver;
    receiver.timing = true;
    auto* sub = subscribe(receiver_connection, "bench.latency", receiver);
    for (int i = 0; i < latency_samples; ++i) {
        std::this_thread::sleep_for(std::chrono::microseconds(500));
        std::string message;
        bench::stamp(message);
        natsConnection_Publish(publisher.nc, "bench.latency", message.data(),
                               static_cast<int>(message.size()));
    }
    receiver.wait_for(latency_samples);
    natsSubscription_Destroy(sub);
    return receiver.ages;
}

double median_of_runs(const std::function<double()>& measure) {
    std::vector<double> results;
    for (int i = 0; i < runs; ++i) {
        results.push_back(measure());
    }
    return percentile(results, 0.5);
}

void print_rate(const std::string& what, double ours, double theirs) {
    std::cout << what << ": broadcast " << static_cast<long>(ours) << " msg/s, nats.c "
              << static_cast<long>(theirs) << " msg/s, ratio " << ours / theirs << "\n";
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 2) {
        std::cerr << "usage: bench_nats nats://host:port [messages]\n";
        return 2;
    }
    const std::string url = argv[1];
    const int messages = argc > 2 ? std::stoi(argv[2]) : 200'000;
    try {
        print_rate("publish (median of 3)",
                   median_of_runs([&] { return broadcast_publish_rate(url, messages); }),
                   median_of_runs([&] { return nats_c_publish_rate(url, messages); }));
        const int confirmed = std::min(messages, 20'000);
        std::cout << "nats.c, each publish flushed (" << confirmed
                  << "): " << static_cast<long>(median_of_runs([&] {
                         return nats_c_confirmed_publish_rate(url, confirmed);
                     }))
                  << " msg/s\n";
        print_rate("delivery to one subscriber (median of 3)",
                   median_of_runs([&] { return broadcast_delivery_rate(url, messages); }),
                   median_of_runs([&] { return nats_c_delivery_rate(url, messages); }));
        const auto ours = broadcast_latency(url);
        const auto theirs = nats_c_latency(url);
        std::cout << "publish->receive every 500 us: broadcast p50 " << percentile(ours, 0.5)
                  << " us, p99 " << percentile(ours, 0.99) << " us; nats.c p50 "
                  << percentile(theirs, 0.5) << " us, p99 " << percentile(theirs, 0.99) << " us\n";
    } catch (const std::exception& e) {
        std::cerr << "bench_nats: " << e.what() << "\n";
        return 1;
    }
}
