#include "kafka_handles.hpp"

#include "kafka_requests.hpp"

#include <broadcaster/error.hpp>

#include <boost/system/system_error.hpp>

#include <algorithm>
#include <cstdio>
#include <random>

namespace broadcaster::detail {
namespace {

// librdkafka writes to stderr by default; the mock cluster alone warns on every topic
// it creates. Errors that matter reach us through error_cb.
void log_nothing(const rd_kafka_t*, int, const char*, const char*) {}

}  // namespace

std::string random_name(const char* kind) {
    std::random_device device;
    const auto value = (std::uint64_t(device()) << 32) | device();
    char text[64];
    std::snprintf(text, sizeof text, "broadcaster-%s-%016llx", kind,
                  static_cast<unsigned long long>(value));
    return text;
}

kafka_timing kafka_timing::of(const kafka_config& config) {
    kafka_timing timing{};
    timing.reconnect_min = config.reconnect_min;
    // librdkafka tries a broker again after a delay growing up to
    // reconnect.backoff.max.ms, plus up to 50% jitter. Capped at a tenth of the publish
    // timeout, it reconnects soon after an outage ends, whatever reconnect_max says (a
    // 5 s backoff made a 3 s outage outlast 5 s publishes).
    timing.reconnect_max =
        std::clamp(config.publish_timeout / 10, config.reconnect_min, config.reconnect_max);
    // A message produced as the outage began must outlive it, the reconnect after it
    // and its retried request.
    timing.message_timeout =
        config.publish_timeout + timing.reconnect_max * 3 / 2 + std::chrono::seconds(1);
    return timing;
}

kafka_handles::kafka_handles(const kafka_config& config, kafka_callbacks callbacks) {
    producer = make(RD_KAFKA_PRODUCER, config, &callbacks);
    try {
        consumer = make(RD_KAFKA_CONSUMER, config, &callbacks);
    } catch (...) {
        rdkafka().rd_kafka_destroy(producer);
        throw;
    }
    // The consumer's own events (errors) come through its consumer queue.
    rdkafka().rd_kafka_poll_set_consumer(consumer);
}

kafka_handles::~kafka_handles() {
    for (const auto& [name, topic] : topics) {
        rdkafka().rd_kafka_topic_destroy(topic);
    }
    rdkafka().rd_kafka_purge(producer, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    rdkafka().rd_kafka_destroy(producer);
    // It never joined its group: there is nothing to leave.
    rdkafka().rd_kafka_destroy_flags(consumer, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
    if (reader_) {
        rdkafka().rd_kafka_destroy_flags(reader_, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
    }
}

rd_kafka_t* kafka_handles::history_reader(const kafka_config& config) {
    if (!reader_) {
        reader_ = make(RD_KAFKA_CONSUMER, config, nullptr);
        rdkafka().rd_kafka_poll_set_consumer(reader_);
    }
    return reader_;
}

rd_kafka_t* kafka_handles::make(rd_kafka_type_t type, const kafka_config& config,
                                const kafka_callbacks* callbacks) {
    rd_kafka_conf_t* conf = rdkafka().rd_kafka_conf_new();
    char error_text[512];
    const auto set = [&](const std::string& name, const std::string& value) {
        if (rdkafka().rd_kafka_conf_set(conf, name.c_str(), value.c_str(), error_text,
                                        sizeof error_text) != RD_KAFKA_CONF_OK) {
            rdkafka().rd_kafka_conf_destroy(conf);
            throw boost::system::system_error(
                error::invalid_url,
                "'" + config.redacted_url + "': librdkafka refused '" + name + "'");
        }
    };
    bool debug = false;
    set("bootstrap.servers", config.bootstrap_servers);
    set("client.id", "broadcaster");
    set("socket.nagle.disable", "true");
    const auto timing = kafka_timing::of(config);
    set("reconnect.backoff.ms", std::to_string(timing.reconnect_min.count()));
    set("reconnect.backoff.max.ms", std::to_string(timing.reconnect_max.count()));
    if (type == RD_KAFKA_PRODUCER) {
        // Latency first: send at once (batches still form while requests are in
        // flight); idempotence keeps the order across retries, and no duplicates.
        set("linger.ms", "0");
        set("enable.idempotence", "true");
        set("message.timeout.ms", std::to_string(to_ms(timing.message_timeout)));
        set("message.max.bytes", std::to_string(2 * 1024 * 1024));
    } else {
        // The group is only a name librdkafka requires for assign(): it is never
        // joined and nothing is committed.
        set("group.id", random_name("group"));
        set("enable.auto.commit", "false");
        set("enable.auto.offset.store", "false");
        // An offset deleted by retention before we read it is a gap to report, not
        // a jump to skip silently (see drain_consumer).
        set("auto.offset.reset", "error");
        set("fetch.wait.max.ms", "100");
    }
    const auto& own = type == RD_KAFKA_PRODUCER ? config.producer : config.consumer;
    for (const auto* settings : {&config.common, &own}) {
        for (const auto& [name, value] : *settings) {
            set(name, value);
            debug = debug || name == "debug";
        }
    }
    if (!callbacks) {
        // The history reader: these decide how a read ends, whatever the URL says.
        set("auto.offset.reset", "error");
        set("enable.partition.eof", "true");
    }
    if (!debug) {
        rdkafka().rd_kafka_conf_set_log_cb(conf, log_nothing);
    }
    if (callbacks) {
        rdkafka().rd_kafka_conf_set_opaque(conf, &target);
        rdkafka().rd_kafka_conf_set_error_cb(conf, callbacks->error);
        if (type == RD_KAFKA_PRODUCER) {
            rdkafka().rd_kafka_conf_set_dr_msg_cb(conf, callbacks->delivery_report);
        }
    }
    rd_kafka_t* client = rdkafka().rd_kafka_new(type, conf, error_text, sizeof error_text);
    if (!client) {
        rdkafka().rd_kafka_conf_destroy(conf);
        throw boost::system::system_error(error::invalid_url,
                                          "'" + config.redacted_url + "': " + error_text);
    }
    return client;
}

}  // namespace broadcaster::detail
