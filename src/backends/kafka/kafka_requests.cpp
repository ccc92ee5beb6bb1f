#include "kafka_requests.hpp"

#include <broadcaster/error.hpp>

#include <algorithm>
#include <thread>

namespace broadcaster::detail {

using std::chrono::milliseconds;

int to_ms(milliseconds duration) {
    return static_cast<int>(std::clamp<milliseconds::rep>(duration.count(), 1, 24L * 3600 * 1000));
}

rd_kafka_resp_err_t reach_cluster(rd_kafka_t* client, milliseconds timeout) {
    const rd_kafka_metadata_t* metadata = nullptr;
    const auto err = rd_kafka_metadata(client, 0, nullptr, &metadata, to_ms(timeout));
    if (metadata) {
        rd_kafka_metadata_destroy(metadata);
    }
    return err;
}

watermarks find_high_watermarks(rd_kafka_t* producer, rd_kafka_t* consumer, rd_kafka_topic_t* topic,
                                milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    const auto remaining = [&] {
        return std::chrono::duration_cast<milliseconds>(deadline -
                                                        std::chrono::steady_clock::now());
    };
    const auto retry_later = [&] {
        if (remaining() <= milliseconds(0)) {
            return false;
        }
        std::this_thread::sleep_for(milliseconds(10));
        return true;
    };
    watermarks out;
    int partitions = 0;
    rd_kafka_resp_err_t last = RD_KAFKA_RESP_ERR_NO_ERROR;
    do {
        const rd_kafka_metadata_t* metadata = nullptr;
        last = rd_kafka_metadata(producer, 0, topic, &metadata, to_ms(remaining()));
        if (!last && metadata->topic_cnt == 1) {
            const auto& found = metadata->topics[0];
            last = found.err;
            const bool led = std::all_of(found.partitions, found.partitions + found.partition_cnt,
                                         [](const auto& p) { return p.leader >= 0 && !p.err; });
            if (!last && found.partition_cnt > 0 && led) {
                partitions = found.partition_cnt;
            } else if (!last) {
                last = RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE;
            }
        }
        if (metadata) {
            rd_kafka_metadata_destroy(metadata);
        }
        if (last == RD_KAFKA_RESP_ERR__TIMED_OUT || last == RD_KAFKA_RESP_ERR__TRANSPORT) {
            out.ec = error::not_connected;
            return out;
        }
    } while (partitions == 0 && retry_later());
    if (partitions == 0) {
        // Still unknown: the broker does not create topics on first use.
        out.ec = last == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART ? error::broker_error
                                                                 : error::not_connected;
        return out;
    }
    for (int partition = 0; partition < partitions; ++partition) {
        std::int64_t low = 0;
        std::int64_t high = 0;
        rd_kafka_resp_err_t err;
        while (
            (err = rd_kafka_query_watermark_offsets(consumer, rd_kafka_topic_name(topic), partition,
                                                    &low, &high, to_ms(remaining()))) &&
            err != RD_KAFKA_RESP_ERR__TIMED_OUT && retry_later()) {
        }
        if (err) {
            out.ec = error::not_connected;
            return out;
        }
        out.high.push_back(high);
    }
    return out;
}

void request_topic_metadata(rd_kafka_t* producer, rd_kafka_topic_t* topic, milliseconds timeout) {
    const rd_kafka_metadata_t* metadata = nullptr;
    rd_kafka_metadata(producer, 0, topic, &metadata, to_ms(timeout));
    if (metadata) {
        rd_kafka_metadata_destroy(metadata);
    }
}

}  // namespace broadcaster::detail
