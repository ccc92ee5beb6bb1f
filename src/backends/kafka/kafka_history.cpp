#include "kafka_history.hpp"

#include "../../history_position.hpp"
#include "kafka_requests.hpp"

#include <broadcaster/error.hpp>

#include <algorithm>
#include <limits>
#include <thread>

namespace broadcaster::detail {

using boost::system::error_code;
using std::chrono::milliseconds;

std::optional<kafka_position> kafka_position::parse(std::string_view text) {
    // Exactly `P-O`: a bare number is not one of ours.
    if (text.find('-') == std::string_view::npos) {
        return std::nullopt;
    }
    const auto pair = parse_numeric_position(text);
    if (!pair || pair->first > std::uint64_t(std::numeric_limits<std::int32_t>::max()) ||
        pair->second > std::uint64_t(std::numeric_limits<std::int64_t>::max() - 1)) {
        return std::nullopt;
    }
    return kafka_position{static_cast<std::int32_t>(pair->first),
                          static_cast<std::int64_t>(pair->second)};
}

std::string kafka_position::str() const {
    return std::to_string(partition) + "-" + std::to_string(offset);
}

kafka_partitioner configured_partitioner(const kafka_config& config) {
    std::string name = "consistent_random";  // librdkafka's default
    for (const auto* settings : {&config.common, &config.producer}) {
        for (const auto& [key, value] : *settings) {
            if (key == "partitioner") {
                name = value;
            }
        }
    }
    // The *_random ones hash a non-empty key like their plain form; ours never is.
    if (name == "consistent" || name == "consistent_random") {
        return rdkafka().rd_kafka_msg_partitioner_consistent;
    }
    if (name == "murmur2" || name == "murmur2_random") {
        return rdkafka().rd_kafka_msg_partitioner_murmur2;
    }
    if (name == "fnv1a" || name == "fnv1a_random") {
        return rdkafka().rd_kafka_msg_partitioner_fnv1a;
    }
    return nullptr;  // `random`: a channel has no partition of its own, nor history
}

namespace {

// Errors a topic's metadata shows while it is being created or its leader elected.
bool settling(rd_kafka_resp_err_t err) {
    return err == RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE ||
           err == RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION;
}

class read_clock {
  public:
    explicit read_clock(milliseconds timeout)
        : deadline_(std::chrono::steady_clock::now() + timeout) {}
    milliseconds remaining() const {
        return std::max(milliseconds(0), std::chrono::duration_cast<milliseconds>(
                                             deadline_ - std::chrono::steady_clock::now()));
    }
    bool retry_later() const {
        if (remaining() <= milliseconds(0)) {
            return false;
        }
        std::this_thread::sleep_for(std::min(milliseconds(10), remaining()));
        return true;
    }

  private:
    std::chrono::steady_clock::time_point deadline_;
};

// The topic's partition count: 0 for a topic that does not exist, -1 if the cluster
// did not answer in time.
std::int32_t partition_count(rd_kafka_t* reader, rd_kafka_topic_t* topic, const read_clock& time) {
    do {
        const rd_kafka_metadata_t* metadata = nullptr;
        const auto err =
            rdkafka().rd_kafka_metadata(reader, 0, topic, &metadata, to_ms(time.remaining()));
        std::int32_t count = -1;
        if (!err && metadata->topic_cnt == 1) {
            const auto& found = metadata->topics[0];
            if (found.err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART) {
                count = 0;
            } else if (!found.err && found.partition_cnt > 0) {
                count = found.partition_cnt;
            } else if (found.err && !settling(found.err)) {
                count = 0;
            }
        }
        if (metadata) {
            rdkafka().rd_kafka_metadata_destroy(metadata);
        }
        if (count >= 0) {
            return count;
        }
    } while (time.retry_later());
    return -1;
}

enum class range_read { done, trimmed, timed_out };

// Reads offsets [start, end) of one partition into `out`.
range_read read_range(rd_kafka_t* reader, const kafka_history_request& request,
                      std::int32_t partition, std::int64_t start, std::int64_t end,
                      const read_clock& time, std::vector<event>& out) {
    auto* list = rdkafka().rd_kafka_topic_partition_list_new(1);
    rdkafka().rd_kafka_topic_partition_list_add(list, request.topic.c_str(), partition)->offset =
        start;
    const auto assigned = rdkafka().rd_kafka_assign(reader, list);
    rdkafka().rd_kafka_topic_partition_list_destroy(list);
    if (assigned) {
        return range_read::timed_out;
    }
    auto result = range_read::timed_out;
    std::int64_t next = start;
    while (next < end && result == range_read::timed_out) {
        const auto wait = time.remaining();
        if (wait <= milliseconds(0)) {
            break;
        }
        rd_kafka_message_t* message = rdkafka().rd_kafka_consumer_poll(reader, to_ms(wait));
        if (!message) {
            continue;
        }
        const bool ours = message->rkt && message->partition == partition &&
                          request.topic == rdkafka().rd_kafka_topic_name(message->rkt);
        if (!ours) {
            // Left over from an earlier read: not this one's.
        } else if (message->err == RD_KAFKA_RESP_ERR__AUTO_OFFSET_RESET ||
                   message->err == RD_KAFKA_RESP_ERR_OFFSET_OUT_OF_RANGE) {
            result = range_read::trimmed;  // deleted while we were getting there
        } else if (message->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            next = std::max(next, message->offset);  // offsets may skip (e.g. markers)
        } else if (!message->err && message->offset >= next && message->offset < end) {
            const auto* payload = static_cast<const char*>(message->payload);
            out.emplace_back(request.channel, std::string(payload ? payload : "", message->len),
                             kafka_position{partition, message->offset}.str());
            next = message->offset + 1;
        } else if (!message->err && message->offset >= end) {
            next = end;
        }
        rdkafka().rd_kafka_message_destroy(message);
    }
    if (next >= end && result == range_read::timed_out) {
        result = range_read::done;
    }
    rdkafka().rd_kafka_assign(reader, nullptr);
    return result;
}

}  // namespace

kafka_history_result read_history(rd_kafka_t* reader, const kafka_history_request& request) {
    const read_clock time(request.timeout);
    kafka_history_result result;
    if (!request.partitioner) {
        result.ec = error::history_not_supported;
        return result;
    }
    rd_kafka_topic_t* topic = rdkafka().rd_kafka_topic_new(reader, request.topic.c_str(), nullptr);
    if (!topic) {
        result.ec = error::broker_error;
        return result;
    }
    const auto partitions = partition_count(reader, topic, time);
    std::int32_t partition = 0;
    if (partitions < 0) {
        result.ec = error::timeout;
    } else if (partitions == 0) {
        // No such topic: nothing kept. A position of it means the topic was deleted.
        result.ec = request.after ? error_code(error::history_gap) : error_code();
    } else if (request.after) {
        partition = request.after->partition;
        if (partition >= partitions) {
            result.ec = error::invalid_position;
        }
    } else {
        partition = request.partitioner(topic, request.topic.data(), request.topic.size(),
                                        partitions, nullptr, nullptr);
    }
    // `last`: the log may be trimmed between the watermarks and the read; try again.
    for (int attempt = 0; attempt < 3 && !result.ec && partitions > 0; ++attempt) {
        std::int64_t low = 0;
        std::int64_t high = 0;
        if (rdkafka().rd_kafka_query_watermark_offsets(reader, request.topic.c_str(), partition,
                                                       &low, &high, to_ms(time.remaining()))) {
            result.ec = error::timeout;
            break;
        }
        std::int64_t start = low;
        if (request.after) {
            if (request.after->offset >= high) {
                result.ec = error::invalid_position;  // later than anything the channel had
                break;
            }
            if (request.after->offset + 1 < low) {
                result.ec = error::history_gap;  // deleted by retention
                break;
            }
            start = request.after->offset + 1;
        }
        const auto most = static_cast<std::int64_t>(
            std::min(request.limit > 0 ? request.limit : request.max_events, request.max_events));
        if (high - start > most) {
            if (request.after && request.limit == 0) {
                // More to catch up with than one read may hold: not deliverable.
                result.ec = error::history_gap;
                break;
            }
            start = high - most;
        }
        result.events.clear();
        if (start >= high) {
            break;
        }
        const auto read = read_range(reader, request, partition, start, high, time, result.events);
        if (read == range_read::done) {
            break;
        }
        result.events.clear();
        if (read == range_read::timed_out) {
            result.ec = error::timeout;
        } else if (request.after) {
            result.ec = error::history_gap;
        } else if (attempt == 2) {
            result.ec = error::broker_error;  // trimmed faster than it can be read
        }
    }
    rdkafka().rd_kafka_topic_destroy(topic);
    return result;
}

}  // namespace broadcaster::detail
