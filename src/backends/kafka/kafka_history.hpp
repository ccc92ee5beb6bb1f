#pragma once

// kafka:// history: positions, and reading a range of a channel's offsets. A channel's
// messages are keyed by its topic, so they all sit on one partition of the topic; a
// position names that partition and the offset in it, `P-O`, so that it stays
// unambiguous whatever the partition count (and orders like the default `N-M` form
// within a channel). See docs/backends/kafka.md.

#include "kafka_config.hpp"
#include "rdkafka_api.hpp"

#include <broadcaster/backend.hpp>
#include <broadcaster/event.hpp>

#include <boost/system/error_code.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace broadcaster::detail {

struct kafka_position {
    std::int32_t partition = 0;
    std::int64_t offset = 0;

    // Nothing for a string this backend cannot have given out.
    static std::optional<kafka_position> parse(std::string_view text);
    std::string str() const;
};

// The partition the producer puts `topic`'s messages on (they are keyed by the topic),
// with the partitioner the URL configures (librdkafka's `partitioner`).
using kafka_partitioner = std::int32_t (*)(const rd_kafka_topic_t*, const void*, std::size_t,
                                           std::int32_t, void*, void*);
kafka_partitioner configured_partitioner(const kafka_config& config);

struct kafka_history_request {
    std::string topic;
    std::string channel;
    std::optional<kafka_position> after;
    std::size_t limit = 0;
    // Longest the read may take; and the most events one read may return.
    std::chrono::milliseconds timeout{};
    std::size_t max_events = 0;
    kafka_partitioner partitioner = nullptr;
    // True once the backend stops: the read gives up within a second.
    std::function<bool()> stopped;
};

struct kafka_history_result {
    boost::system::error_code ec;
    std::vector<event> events;
};

// Reads what `request` asks for with `reader`, a consumer that only this read uses
// while it runs (assigned the channel's partition, then unassigned). Blocking: runs on
// the blocking_service threads.
kafka_history_result read_history(rd_kafka_t* reader, const kafka_history_request& request);

}  // namespace broadcaster::detail
