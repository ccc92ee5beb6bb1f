#include "kafka_requests.hpp"

#include <broadcaster/error.hpp>

#include <algorithm>
#include <string_view>
#include <thread>
#include <unordered_map>

namespace broadcaster::detail {

using std::chrono::milliseconds;

int to_ms(milliseconds duration) {
    return static_cast<int>(std::clamp<milliseconds::rep>(duration.count(), 1, 24L * 3600 * 1000));
}

rd_kafka_resp_err_t reach_cluster(rd_kafka_t* client, milliseconds timeout) {
    const rd_kafka_metadata_t* metadata = nullptr;
    const auto err = rdkafka().rd_kafka_metadata(client, 0, nullptr, &metadata, to_ms(timeout));
    if (metadata) {
        rdkafka().rd_kafka_metadata_destroy(metadata);
    }
    return err;
}

namespace {

// Errors a topic's metadata shows while it is being created or its leaders elected.
bool settling(rd_kafka_resp_err_t err) {
    return err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART ||
           err == RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE ||
           err == RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION ||
           err == RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION || err == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC;
}

class deadline_clock {
  public:
    explicit deadline_clock(milliseconds timeout)
        : deadline_(std::chrono::steady_clock::now() + timeout) {}
    milliseconds remaining() const {
        return std::chrono::duration_cast<milliseconds>(deadline_ -
                                                        std::chrono::steady_clock::now());
    }
    // Waits a little before asking again; false when the time is up.
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

// Fills in the partition count of every topic of `out` that has leaders for all its
// partitions (0 while unknown); sets `ec` for topics the broker refuses.
void find_partitions(rd_kafka_t* producer, const deadline_clock& time,
                     std::vector<topic_watermarks>& out, std::vector<int>& partitions) {
    std::unordered_map<std::string_view, std::size_t> index;
    for (std::size_t i = 0; i < out.size(); ++i) {
        index.emplace(out[i].topic, i);
    }
    std::vector<rd_kafka_resp_err_t> last(out.size(), RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC);
    const auto waiting = [&] {
        return std::any_of(out.begin(), out.end(), [&](const topic_watermarks& t) {
            return !t.ec && partitions[&t - out.data()] == 0;
        });
    };
    do {
        // No topic named: librdkafka asks for every topic it knows locally, which
        // includes all of ours, in one request.
        const rd_kafka_metadata_t* metadata = nullptr;
        const auto err =
            rdkafka().rd_kafka_metadata(producer, 0, nullptr, &metadata, to_ms(time.remaining()));
        for (int t = 0; !err && t < metadata->topic_cnt; ++t) {
            const auto& found = metadata->topics[t];
            const auto at = index.find(found.topic);
            if (at == index.end() || partitions[at->second] > 0 || out[at->second].ec) {
                continue;
            }
            const bool led = std::all_of(found.partitions, found.partitions + found.partition_cnt,
                                         [](const auto& p) { return p.leader >= 0 && !p.err; });
            last[at->second] = found.err;
            if (!found.err && found.partition_cnt > 0 && led) {
                partitions[at->second] = found.partition_cnt;
            } else if (found.err && !settling(found.err)) {
                out[at->second].ec = error::broker_error;  // e.g. not authorized
            }
        }
        if (metadata) {
            rdkafka().rd_kafka_metadata_destroy(metadata);
        }
    } while (waiting() && time.retry_later());
    for (std::size_t i = 0; i < out.size(); ++i) {
        if (!out[i].ec && partitions[i] == 0 &&
            last[i] == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART) {
            // Answered, but still unknown: the broker does not create topics on first use.
            out[i].ec = error::broker_error;
        }
    }
}

}  // namespace

std::vector<topic_watermarks> find_high_watermarks(rd_kafka_t* producer, rd_kafka_t* consumer,
                                                   const std::vector<std::string>& topics,
                                                   milliseconds timeout) {
    const deadline_clock time(timeout);
    std::vector<topic_watermarks> out(topics.size());
    for (std::size_t i = 0; i < topics.size(); ++i) {
        out[i].topic = topics[i];
    }
    std::vector<int> partitions(topics.size(), 0);
    find_partitions(producer, time, out, partitions);

    // (topic, partition) pairs still to ask for; -1 marks an offset not known yet.
    std::unordered_map<std::string_view, std::size_t> index;
    std::vector<std::vector<std::int64_t>> high(topics.size());
    std::vector<std::pair<std::size_t, int>> asking;
    for (std::size_t i = 0; i < topics.size(); ++i) {
        index.emplace(topics[i], i);
        high[i].assign(partitions[i], -1);
        for (int p = 0; p < partitions[i]; ++p) {
            asking.emplace_back(i, p);
        }
    }
    while (!asking.empty()) {
        auto* list = rdkafka().rd_kafka_topic_partition_list_new(static_cast<int>(asking.size()));
        for (const auto& [i, p] : asking) {
            // A time of "end" (-1) asks for the latest offset: the high watermark.
            rdkafka().rd_kafka_topic_partition_list_add(list, topics[i].c_str(), p)->offset =
                RD_KAFKA_OFFSET_END;
        }
        const auto err =
            rdkafka().rd_kafka_offsets_for_times(consumer, list, to_ms(time.remaining()));
        std::vector<std::pair<std::size_t, int>> again;
        for (int k = 0; k < list->cnt; ++k) {
            const auto& element = list->elems[k];
            const auto i = index.at(element.topic);
            if (!err && !element.err && element.offset >= 0) {
                high[i][element.partition] = element.offset;
            } else if (!err && element.err && !settling(element.err)) {
                out[i].ec = error::broker_error;
            } else {
                again.emplace_back(i, element.partition);
            }
        }
        rdkafka().rd_kafka_topic_partition_list_destroy(list);
        asking.swap(again);
        if (err == RD_KAFKA_RESP_ERR__TIMED_OUT || (!asking.empty() && !time.retry_later())) {
            break;
        }
    }
    for (std::size_t i = 0; i < topics.size(); ++i) {
        const bool complete = std::none_of(high[i].begin(), high[i].end(),
                                           [](std::int64_t offset) { return offset < 0; });
        if (!out[i].ec && partitions[i] > 0 && complete) {
            out[i].high = std::move(high[i]);
        }
    }
    return out;
}

void request_topic_metadata(rd_kafka_t* producer, rd_kafka_topic_t* topic, milliseconds timeout) {
    const rd_kafka_metadata_t* metadata = nullptr;
    rdkafka().rd_kafka_metadata(producer, 0, topic, &metadata, to_ms(timeout));
    if (metadata) {
        rdkafka().rd_kafka_metadata_destroy(metadata);
    }
}

}  // namespace broadcaster::detail
