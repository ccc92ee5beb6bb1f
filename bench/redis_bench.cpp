// Redis backend figures, to read beside redis-benchmark on the same server
// (bench/redis_bench.sh runs both side by side).
//
//   bench_redis URL [messages]
//
// publish: `messages` PUBLISHes through one broadcast with up to 4096 in flight
//   (the backend pipelines them on one connection); completions per second.
// round trip: a blocking hiredis client's PUBLISH round trip, one every 500 us.
// raw latency: publish -> receive over two blocking hiredis connections, paced alike.
// latency: publish -> receive through the broadcast, one message every 500 us.

#include "latency.hpp"

#include <broadcaster/broadcaster.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/url/parse.hpp>

#include <hiredis/hiredis.h>

#include <algorithm>
#include <chrono>
#include <iostream>
#include <thread>
#include <vector>

namespace {

namespace asio = boost::asio;
using bench::clock_type;
using bench::percentile;
using boost::system::error_code;

// Runs `io` until `done()`: a connected broadcast always has work (its readers).
template <typename Predicate>
void run_until(asio::io_context& io, Predicate done) {
    while (!done()) {
        io.run_one();
    }
}

double publish_throughput(const std::string& url, int messages) {
    asio::io_context io(1);
    broadcaster::broadcast bc(io, url);
    bool connected = false;
    bc.async_connect([&](error_code ec) {
        broadcaster::throw_if_error(ec, "connect");
        connected = true;
    });
    run_until(io, [&] { return connected; });
    const std::string payload = "hello";
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
            bc.async_publish("bench", payload, on_done);
        }
    };
    const auto start = clock_type::now();
    send_more();
    run_until(io, [&] { return done == messages; });
    const std::chrono::duration<double> took = clock_type::now() - start;
    return messages / took.count();
}

std::vector<double> hiredis_round_trips(const std::string& host, int port, int n) {
    redisContext* c = redisConnect(host.c_str(), port);
    if (!c || c->err) {
        throw std::runtime_error("hiredis cannot connect");
    }
    std::vector<double> us;
    for (int i = 0; i < n; ++i) {
        // Paced like the end-to-end test, so both include waking an idle process.
        std::this_thread::sleep_for(std::chrono::microseconds(500));
        const auto start = clock_type::now();
        auto* reply = static_cast<redisReply*>(redisCommand(c, "PUBLISH %s %s", "rtt", "x"));
        us.push_back(std::chrono::duration<double, std::micro>(clock_type::now() - start).count());
        freeReplyObject(reply);
    }
    redisFree(c);
    return us;
}

// The same publish -> receive path with two blocking hiredis connections and no
// library: a thread reads the subscribed one.
std::vector<double> raw_hiredis_latency(const std::string& host, int port, int n) {
    redisContext* pub = redisConnect(host.c_str(), port);
    redisContext* sub = redisConnect(host.c_str(), port);
    if (!pub || pub->err || !sub || sub->err) {
        throw std::runtime_error("hiredis cannot connect");
    }
    freeReplyObject(redisCommand(sub, "SUBSCRIBE raw"));
    std::vector<double> us;
    std::thread reader([&] {
        for (int i = 0; i < n; ++i) {
            void* reply = nullptr;
            if (redisGetReply(sub, &reply) != REDIS_OK) {
                return;
            }
            auto* r = static_cast<redisReply*>(reply);
            us.push_back(bench::age_us({r->element[2]->str, r->element[2]->len}));
            freeReplyObject(r);
        }
    });
    for (int i = 0; i < n; ++i) {
        std::this_thread::sleep_for(std::chrono::microseconds(500));
        std::string message;
        bench::stamp(message);
        freeReplyObject(redisCommand(pub, "PUBLISH raw %b", message.data(), message.size()));
    }
    reader.join();
    redisFree(pub);
    redisFree(sub);
    return us;
}

std::vector<double> end_to_end_latency(const std::string& url, int n) {
    asio::io_context io(1);
    broadcaster::broadcast bc(io, url);
    std::vector<double> us;
    asio::steady_timer pace(io);
    broadcaster::subscriber sub;
    int published = 0;
    std::function<void()> publish_next;
    std::function<void()> receive_next = [&] {
        sub.async_receive([&](error_code ec, broadcaster::event ev) {
            if (ec) {
                return;
            }
            us.push_back(bench::age_us(ev.message()));
            if (static_cast<int>(us.size()) < n) {
                receive_next();
            }
        });
    };
    publish_next = [&] {
        if (published++ == n) {
            return;
        }
        std::string message;
        bench::stamp(message);
        bc.async_publish("latency", message, [](error_code) {});
        pace.expires_after(std::chrono::microseconds(500));
        pace.async_wait([&](error_code) { publish_next(); });
    };
    bc.async_connect([&](error_code ec) {
        broadcaster::throw_if_error(ec, "connect");
        bc.async_subscribe("latency", [&](error_code ec, broadcaster::subscriber s) {
            broadcaster::throw_if_error(ec, "subscribe");
            sub = std::move(s);
            receive_next();
            publish_next();
        });
    });
    run_until(io, [&] { return static_cast<int>(us.size()) == n; });
    return us;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 2) {
        std::cerr << "usage: bench_redis redis://host:port [messages]\n";
        return 2;
    }
    const std::string url = argv[1];
    const int messages = argc > 2 ? std::stoi(argv[2]) : 200'000;
    const auto parsed = boost::urls::parse_uri(url).value();
    const std::string host = parsed.host();
    const int port = parsed.has_port() ? parsed.port_number() : 6379;

    const auto rate = publish_throughput(url, messages);
    const auto rtt = hiredis_round_trips(host, port, 5000);
    const auto raw = raw_hiredis_latency(host, port, 5000);
    const auto e2e = end_to_end_latency(url, 5000);
    std::cout << "broadcast publish throughput: " << static_cast<long>(rate) << " msg/s\n"
              << "hiredis PUBLISH round trip:   p50 " << percentile(rtt, 0.5) << " us, p99 "
              << percentile(rtt, 0.99) << " us\n"
              << "hiredis publish->receive:     p50 " << percentile(raw, 0.5) << " us, p99 "
              << percentile(raw, 0.99) << " us\n"
              << "broadcast publish->receive:   p50 " << percentile(e2e, 0.5) << " us, p99 "
              << percentile(e2e, 0.99) << " us\n";
}
