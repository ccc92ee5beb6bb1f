// redis-cluster:// figures: publish throughput and fan-out through 1, 2 and 3 shards
// of one cluster, side by side in one run (bench/redis_cluster_bench.sh forms the
// cluster and runs this).
//
//   bench_redis_cluster SEED_PORT [messages]
//
// For each shard count k, six channels whose slots belong to k masters (6 on one, 3+3,
// 2+2+2). publish: `messages` SPUBLISHes round-robin over them through one broadcast,
// up to 4096 in flight; completions per second. fan-out: the same with one subscriber
// broadcast (another instance) on all six channels; messages received per second.

#include <broadcaster/broadcaster.hpp>

#include <boost/asio/io_context.hpp>

#include <hiredis/hiredis.h>

#include <chrono>
#include <functional>
#include <iostream>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace {

namespace asio = boost::asio;
using boost::system::error_code;
using clock_type = std::chrono::steady_clock;

template <typename Predicate>
void run_until(asio::io_context& io, Predicate done) {
    while (!done()) {
        io.run_one();
    }
}

redisReply* command(redisContext* c, const std::vector<std::string>& args) {
    std::vector<const char*> argv;
    std::vector<std::size_t> lengths;
    for (const auto& a : args) {
        argv.push_back(a.data());
        lengths.push_back(a.size());
    }
    auto* reply = static_cast<redisReply*>(
        redisCommandArgv(c, static_cast<int>(argv.size()), argv.data(), lengths.data()));
    if (!reply) {
        throw std::runtime_error("redis: no reply");
    }
    return reply;
}

// Each master's port, with the first slot range it serves.
std::map<long long, std::vector<std::pair<long long, long long>>> masters(redisContext* c) {
    std::map<long long, std::vector<std::pair<long long, long long>>> out;
    auto* slots = command(c, {"CLUSTER", "SLOTS"});
    for (std::size_t i = 0; i < slots->elements; ++i) {
        const auto* range = slots->element[i];
        out[range->element[2]->element[1]->integer].emplace_back(range->element[0]->integer,
                                                                 range->element[1]->integer);
    }
    freeReplyObject(slots);
    return out;
}

// Six channel names on the first `shards` masters, evenly.
std::vector<std::string> channels_on(redisContext* c, int shards) {
    const auto by_master = masters(c);
    std::vector<long long> ports;
    for (const auto& [port, ranges] : by_master) {
        ports.push_back(port);
    }
    std::map<long long, int> wanted;
    for (int i = 0; i < shards; ++i) {
        wanted[ports[static_cast<std::size_t>(i)]] = 6 / shards;
    }
    std::vector<std::string> names;
    for (int n = 0; names.size() < 6; ++n) {
        auto name = "bench-" + std::to_string(shards) + "-" + std::to_string(n);
        auto* reply = command(c, {"CLUSTER", "KEYSLOT", name});
        const auto slot = reply->integer;
        freeReplyObject(reply);
        for (auto& [port, left] : wanted) {
            for (const auto& [first, last] : by_master.at(port)) {
                if (left > 0 && first <= slot && slot <= last) {
                    --left;
                    names.push_back(name);
                }
            }
        }
    }
    return names;
}

broadcaster::broadcast connected(asio::io_context& io, const std::string& url) {
    broadcaster::broadcast bc(io, url);
    bool done = false;
    bc.async_connect([&](error_code ec) {
        broadcaster::throw_if_error(ec, "connect");
        done = true;
    });
    run_until(io, [&] { return done; });
    return bc;
}

// Publishes `messages` round-robin over `channels`; with `fan_out`, a second instance
// subscribes first and the time runs until it received them all. Messages per second.
double run(const std::string& url, const std::vector<std::string>& channels, int messages,
           bool fan_out) {
    asio::io_context io(1);
    auto publisher = connected(io, url);
    std::optional<broadcaster::broadcast> reader;
    std::optional<broadcaster::subscriber> sub;
    int received = 0;
    if (fan_out) {
        reader.emplace(connected(io, url));
        bool subscribed = false;
        reader->async_subscribe(broadcaster::channel_list(channels),
                                broadcaster::subscribe_options{1 << 20},
                                [&](error_code ec, broadcaster::subscriber s) {
                                    broadcaster::throw_if_error(ec, "subscribe");
                                    sub.emplace(std::move(s));
                                    subscribed = true;
                                });
        run_until(io, [&] { return subscribed; });
    }
    std::function<void()> receive_more = [&] {
        sub->async_receive([&](error_code ec, broadcaster::event) {
            if (!ec && ++received < messages) {
                receive_more();
            }
        });
    };
    if (fan_out) {
        receive_more();
    }
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
            publisher.async_publish(channels[static_cast<std::size_t>(sent) % channels.size()],
                                    "hello", on_done);
            ++sent;
        }
    };
    const auto start = clock_type::now();
    send_more();
    run_until(io, [&] { return done == messages && (!fan_out || received == messages); });
    const std::chrono::duration<double> took = clock_type::now() - start;
    return messages / took.count();
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 2) {
        std::cerr << "usage: bench_redis_cluster SEED_PORT [messages]\n";
        return 2;
    }
    const int port = std::stoi(argv[1]);
    const int messages = argc > 2 ? std::stoi(argv[2]) : 200000;
    redisContext* c = redisConnect("127.0.0.1", port);
    if (!c || c->err) {
        std::cerr << "cannot connect to 127.0.0.1:" << port << "\n";
        return 1;
    }
    const std::string url = "redis-cluster://127.0.0.1:" + std::to_string(port);
    std::cout << "shards  publish/s  fan-out received/s\n";
    for (int shards = 1; shards <= 3; ++shards) {
        const auto channels = channels_on(c, shards);
        const auto publish = run(url, channels, messages, false);
        const auto fan_out = run(url, channels, messages, true);
        std::cout << shards << "       " << static_cast<long>(publish) << "     "
                  << static_cast<long>(fan_out) << "\n";
    }
    redisFree(c);
}
