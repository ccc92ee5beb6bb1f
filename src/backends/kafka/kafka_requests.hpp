#pragma once

// librdkafka's blocking requests: metadata and high watermarks. They wait for brokers'
// answers, so they run on the blocking_service threads, never on an I/O thread.

#include <boost/system/error_code.hpp>

#include <librdkafka/rdkafka.h>

#include <chrono>
#include <cstdint>
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

struct watermarks {
    boost::system::error_code ec;
    std::vector<std::int64_t> high;  // per partition
};

// The high watermark of every partition of `topic` (a producer's handle), asking
// through `producer`, which may create it (auto-creation), and `consumer`, which so
// learns the partitions' leaders before they are assigned to it. Waits while a new
// topic's partitions get their leaders, up to `timeout`.
watermarks find_high_watermarks(rd_kafka_t* producer, rd_kafka_t* consumer, rd_kafka_topic_t* topic,
                                std::chrono::milliseconds timeout);

}  // namespace broadcaster::detail
