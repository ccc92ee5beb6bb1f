#pragma once

#include "kafka_config.hpp"
#include "rdkafka_api.hpp"

#include <atomic>
#include <chrono>
#include <string>
#include <unordered_map>

namespace broadcaster::detail {

class kafka_client;

// Where librdkafka's callbacks go. They run only inside rd_kafka_poll and
// rd_kafka_consumer_poll, which the client calls on its strand.
struct kafka_callbacks {
    void (*error)(rd_kafka_t*, int err, const char* reason, void* opaque);
    void (*delivery_report)(rd_kafka_t*, const rd_kafka_message_t* message, void* opaque);
};

// The two librdkafka clients of a Kafka backend, configured from the URL: a producer,
// and a consumer that is only ever assigned partitions (its group is never joined).
// Shared with blocking requests; destroyed on the blocking_service threads, as
// rd_kafka_destroy waits for librdkafka's own threads.
struct kafka_handles {
    // Throws system_error(error::invalid_url) if librdkafka refuses the configuration.
    kafka_handles(const kafka_config& config, kafka_callbacks callbacks);
    ~kafka_handles();
    kafka_handles(const kafka_handles&) = delete;
    kafka_handles& operator=(const kafka_handles&) = delete;

    // The callbacks' opaque: the client they reach, cleared when it stops.
    std::atomic<kafka_client*> target{nullptr};
    rd_kafka_t* producer = nullptr;
    rd_kafka_t* consumer = nullptr;
    // A third client for history reads, made by the first one (see kafka_history.hpp);
    // reads run one at a time, on the blocking_service threads.
    rd_kafka_t* history_reader(const kafka_config& config);
    // The producer's topic handles, made on the strand; blocking requests use them.
    std::unordered_map<std::string, rd_kafka_topic_t*> topics;

  private:
    // `callbacks` null: a client whose events nobody polls for but its own reads.
    rd_kafka_t* make(rd_kafka_type_t type, const kafka_config& config,
                     const kafka_callbacks* callbacks);

    rd_kafka_t* reader_ = nullptr;
};

// librdkafka's timing settings, derived from the URL's timeouts so that a publish
// survives any outage shorter than publish_timeout.
struct kafka_timing {
    std::chrono::milliseconds reconnect_min;    // reconnect.backoff.ms
    std::chrono::milliseconds reconnect_max;    // reconnect.backoff.max.ms
    std::chrono::milliseconds message_timeout;  // message.timeout.ms

    static kafka_timing of(const kafka_config& config);
};

// "broadcaster-KIND-" and 16 random hex digits.
std::string random_name(const char* kind);

}  // namespace broadcaster::detail
