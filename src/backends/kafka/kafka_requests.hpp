#pragma once

// librdkafka's blocking requests: metadata and high watermarks. They wait for brokers'
// answers, so they run on the blocking_service threads, never on an I/O thread.

#include "rdkafka_api.hpp"

#include <boost/system/error_code.hpp>

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace broadcaster::detail {

// A duration as librdkafka's int milliseconds (at least 1).
int to_ms(std::chrono::milliseconds duration);

// Asks any broker for metadata: whether the cluster can be reached.
rd_kafka_resp_err_t reach_cluster(rd_kafka_t* client, std::chrono::milliseconds timeout);

// Asks for `topic`'s metadata now, instead of on librdkafka's next one-second scan;
// with auto-creation on the broker, this creates the topic.
void request_topic_metadata(rd_kafka_t* producer, rd_kafka_topic_t* topic,
                            std::chrono::milliseconds timeout);

// What a subscribe needs to know of a topic: the high watermark of each partition.
struct topic_watermarks {
    std::string topic;
    // Set when the topic cannot be subscribed (e.g. the broker refuses it, or does not
    // create topics on first use).
    boost::system::error_code ec;
    // Per partition; empty without `ec`: not found in time (no broker answered, or the
    // partitions have no leaders yet).
    std::vector<std::int64_t> high;
};

// The high watermarks of every partition of `topics` (each already a topic of
// `producer`, so one of its locally known topics), for many topics at once: one
// metadata request through `producer` for all of them, which may create them
// (auto-creation), repeated while new topics' partitions get their leaders; then one
// ListOffsets round through `consumer`, which so learns the leaders before the
// partitions are assigned to it. Gives up on what is still unknown after `timeout`.
std::vector<topic_watermarks> find_high_watermarks(rd_kafka_t* producer, rd_kafka_t* consumer,
                                                   const std::vector<std::string>& topics,
                                                   std::chrono::milliseconds timeout);

}  // namespace broadcaster::detail
