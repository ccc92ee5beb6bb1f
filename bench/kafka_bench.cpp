// The Kafka backend beside librdkafka's own producer and consumer, doing the same
// work against the same cluster in the same run (the ceiling this machine allows):
// publish throughput (until every delivery report; the broadcast keeps up to 16384
// publishes in flight) and publish→receive latency at a fixed rate.
// Usage: bench_kafka BOOTSTRAP [MESSAGES [FETCH_WAIT_MS]]
// librdkafka's mock cluster answers a fetch only after fetch.wait.max.ms (a real
// broker answers as soon as data arrives), so latency is measured with a short one.

#include "latency.hpp"

#include <broadcaster/broadcaster.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <librdkafka/rdkafka.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <functional>
#include <iostream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace asio = boost::asio;
using bench::age_us;
using bench::clock_type;
using bench::percentile;
using namespace std::chrono_literals;

namespace {

constexpr int latency_samples = 2000;
constexpr auto latency_interval = 1ms;  // 1000 messages/s

std::string stamped_message() {
    std::string message(64, 'x');
    bench::stamp(message);
    return message;
}

// ---- librdkafka alone, configured as the backend configures it ---------------------

std::string fetch_wait_ms = "100";

rd_kafka_t* make_client(rd_kafka_type_t type, const std::string& bootstrap) {
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    char error[512];
    std::vector<std::pair<std::string, std::string>> settings{{"bootstrap.servers", bootstrap},
                                                              {"socket.nagle.disable", "true"}};
    if (type == RD_KAFKA_PRODUCER) {
        settings.insert(settings.end(), {{"linger.ms", "0"}, {"enable.idempotence", "true"}});
    } else {
        settings.insert(settings.end(), {{"group.id", "bench-raw"},
                                         {"enable.auto.commit", "false"},
                                         {"fetch.wait.max.ms", fetch_wait_ms}});
    }
    for (const auto& [name, value] : settings) {
        if (rd_kafka_conf_set(conf, name.c_str(), value.c_str(), error, sizeof error) !=
            RD_KAFKA_CONF_OK) {
            throw std::runtime_error(error);
        }
    }
    rd_kafka_conf_set_log_cb(conf, [](const rd_kafka_t*, int, const char*, const char*) {});
    rd_kafka_t* client = rd_kafka_new(type, conf, error, sizeof error);
    if (!client) {
        throw std::runtime_error(error);
    }
    return client;
}

// Assigns every partition of `topic` at its high watermark (as the backend does).
void assign_at_end(rd_kafka_t* consumer, rd_kafka_t* producer, const std::string& topic) {
    rd_kafka_topic_t* handle = rd_kafka_topic_new(producer, topic.c_str(), nullptr);
    const rd_kafka_metadata_t* metadata = nullptr;
    int partitions = 0;
    while (partitions == 0) {
        if (rd_kafka_metadata(producer, 0, handle, &metadata, 5000) == 0 &&
            metadata->topic_cnt == 1 && metadata->topics[0].err == 0) {
            partitions = metadata->topics[0].partition_cnt;
        }
        if (metadata) {
            rd_kafka_metadata_destroy(metadata);
        }
        std::this_thread::sleep_for(10ms);
    }
    rd_kafka_topic_destroy(handle);
    auto* list = rd_kafka_topic_partition_list_new(partitions);
    for (int p = 0; p < partitions; ++p) {
        std::int64_t low = 0;
        std::int64_t high = 0;
        rd_kafka_query_watermark_offsets(consumer, topic.c_str(), p, &low, &high, 5000);
        rd_kafka_topic_partition_list_add(list, topic.c_str(), p)->offset = high;
    }
    rd_kafka_assign(consumer, list);
    rd_kafka_topic_partition_list_destroy(list);
}

void produce(rd_kafka_t* producer, const std::string& topic, const std::string& message) {
    static const std::string key = "bench-raw";
    while (rd_kafka_producev(producer, RD_KAFKA_V_TOPIC(topic.c_str()),
                             RD_KAFKA_V_VALUE(const_cast<char*>(message.data()), message.size()),
                             RD_KAFKA_V_KEY(key.data(), key.size()),
                             RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                             RD_KAFKA_V_END) == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
        rd_kafka_poll(producer, 1);
    }
}

double raw_throughput(const std::string& bootstrap, int messages) {
    rd_kafka_t* producer = make_client(RD_KAFKA_PRODUCER, bootstrap);
    const std::string topic = "bench-raw-flood";
    produce(producer, topic, "warm-up");
    rd_kafka_flush(producer, 10000);
    const std::string message(64, 'x');
    const auto start = clock_type::now();
    for (int i = 0; i < messages; ++i) {
        produce(producer, topic, message);
        rd_kafka_poll(producer, 0);
    }
    rd_kafka_flush(producer, 60000);
    const std::chrono::duration<double> took = clock_type::now() - start;
    rd_kafka_destroy(producer);
    return messages / took.count();
}

std::vector<double> raw_latency(const std::string& bootstrap) {
    rd_kafka_t* producer = make_client(RD_KAFKA_PRODUCER, bootstrap);
    rd_kafka_t* consumer = make_client(RD_KAFKA_CONSUMER, bootstrap);
    rd_kafka_poll_set_consumer(consumer);
    const std::string topic = "bench-raw-latency";
    assign_at_end(consumer, producer, topic);
    std::vector<double> us;
    std::thread reader([&] {
        while (static_cast<int>(us.size()) < latency_samples) {
            if (rd_kafka_message_t* m = rd_kafka_consumer_poll(consumer, 100)) {
                if (!m->err && m->len >= 8) {
                    us.push_back(age_us({static_cast<const char*>(m->payload), m->len}));
                }
                rd_kafka_message_destroy(m);
            }
        }
    });
    auto next = clock_type::now();
    for (int i = 0; i < latency_samples; ++i) {
        produce(producer, topic, stamped_message());
        rd_kafka_poll(producer, 0);
        next += latency_interval;
        std::this_thread::sleep_until(next);
    }
    reader.join();
    rd_kafka_flush(producer, 10000);
    rd_kafka_destroy(producer);
    rd_kafka_destroy(consumer);
    return us;
}

// ---- the same through one broadcast ------------------------------------------------

double broadcast_throughput(const std::string& url, int messages) {
    asio::io_context io;
    double rate = 0;
    asio::co_spawn(
        io,
        [&]() -> asio::awaitable<void> {
            broadcaster::broadcast bc(io, url);
            co_await bc.async_connect(asio::use_awaitable);
            co_await bc.async_publish("bench-flood", "warm-up", asio::use_awaitable);
            const std::string message(64, 'x');
            // Up to `window` publishes in flight: enough for librdkafka to batch, and
            // memory stays flat (as librdkafka's own queue limit does for the raw run).
            constexpr int window = 16384;
            int sent = 0;
            int acknowledged = 0;
            std::function<void()> send_more = [&] {
                while (sent < messages && sent - acknowledged < window) {
                    ++sent;
                    bc.async_publish("bench-flood", message, [&](boost::system::error_code) {
                        ++acknowledged;
                        send_more();
                    });
                }
            };
            const auto start = clock_type::now();
            send_more();
            asio::steady_timer timer(io);
            while (acknowledged < messages) {
                timer.expires_after(1ms);
                co_await timer.async_wait(asio::use_awaitable);
            }
            const std::chrono::duration<double> took = clock_type::now() - start;
            rate = messages / took.count();
        },
        [](std::exception_ptr e) {
            if (e) {
                std::rethrow_exception(e);
            }
        });
    io.run();
    return rate;
}

std::vector<double> broadcast_latency(const std::string& url) {
    asio::io_context io;
    std::vector<double> us;
    asio::co_spawn(
        io,
        [&]() -> asio::awaitable<void> {
            broadcaster::broadcast bc(io, url);
            co_await bc.async_connect(asio::use_awaitable);
            auto sub = co_await bc.async_subscribe("bench-latency", asio::use_awaitable);
            asio::steady_timer timer(io);
            auto next = clock_type::now();
            for (int i = 0; i < latency_samples; ++i) {
                bc.async_publish("bench-latency", stamped_message(),
                                 [](boost::system::error_code) {});
                const auto ev = co_await sub.async_receive(asio::use_awaitable);
                us.push_back(age_us(ev.message()));
                next += latency_interval;
                timer.expires_at(next);
                co_await timer.async_wait(asio::use_awaitable);
            }
        },
        [](std::exception_ptr e) {
            if (e) {
                std::rethrow_exception(e);
            }
        });
    io.run();
    return us;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 2) {
        std::cerr << "usage: bench_kafka BOOTSTRAP [MESSAGES [FETCH_WAIT_MS]]\n";
        return 2;
    }
    const std::string bootstrap = argv[1];
    const int messages = argc > 2 ? std::stoi(argv[2]) : 200000;
    fetch_wait_ms = argc > 3 ? argv[3] : "100";
    const std::string url = "kafka://" + bootstrap + "?consumer.fetch.wait.max.ms=" + fetch_wait_ms;
    const auto raw_rate = raw_throughput(bootstrap, messages);
    const auto our_rate = broadcast_throughput(url, messages);
    const auto raw = raw_latency(bootstrap);
    const auto ours = broadcast_latency(url);
    std::cout << "librdkafka producer throughput: " << static_cast<long>(raw_rate) << " msg/s\n"
              << "broadcast publish throughput:   " << static_cast<long>(our_rate) << " msg/s ("
              << our_rate / raw_rate << "x)\n"
              << "fetch.wait.max.ms " << fetch_wait_ms << "\n"
              << "librdkafka produce->consume at 1000/s: p50 " << percentile(raw, 0.5)
              << " us, p99 " << percentile(raw, 0.99) << " us\n"
              << "broadcast publish->receive at 1000/s:  p50 " << percentile(ours, 0.5)
              << " us, p99 " << percentile(ours, 0.99) << " us\n";
}
