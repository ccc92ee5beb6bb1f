#pragma once

// librdkafka's functions, reached through pointers filled when the first kafka://
// broadcast is made (see client_library.hpp): libbroadcaster does not link librdkafka,
// so a process that never uses Kafka maps neither it nor its compression and SASL
// libraries.

#include <librdkafka/rdkafka.h>

namespace broadcaster::detail {

// Every librdkafka function the backend calls, once.
#define BROADCASTER_RDKAFKA_FUNCTIONS(X)     \
    X(rd_kafka_assign)                       \
    X(rd_kafka_conf_destroy)                 \
    X(rd_kafka_conf_new)                     \
    X(rd_kafka_conf_set)                     \
    X(rd_kafka_conf_set_dr_msg_cb)           \
    X(rd_kafka_conf_set_error_cb)            \
    X(rd_kafka_conf_set_log_cb)              \
    X(rd_kafka_conf_set_opaque)              \
    X(rd_kafka_consumer_poll)                \
    X(rd_kafka_destroy)                      \
    X(rd_kafka_destroy_flags)                \
    X(rd_kafka_error_destroy)                \
    X(rd_kafka_incremental_assign)           \
    X(rd_kafka_incremental_unassign)         \
    X(rd_kafka_message_destroy)              \
    X(rd_kafka_metadata)                     \
    X(rd_kafka_metadata_destroy)             \
    X(rd_kafka_msg_partitioner_consistent)   \
    X(rd_kafka_msg_partitioner_fnv1a)        \
    X(rd_kafka_msg_partitioner_murmur2)      \
    X(rd_kafka_new)                          \
    X(rd_kafka_offsets_for_times)            \
    X(rd_kafka_poll)                         \
    X(rd_kafka_poll_set_consumer)            \
    X(rd_kafka_producev)                     \
    X(rd_kafka_purge)                        \
    X(rd_kafka_query_watermark_offsets)      \
    X(rd_kafka_queue_destroy)                \
    X(rd_kafka_queue_get_consumer)           \
    X(rd_kafka_queue_get_main)               \
    X(rd_kafka_queue_io_event_enable)        \
    X(rd_kafka_topic_destroy)                \
    X(rd_kafka_topic_name)                   \
    X(rd_kafka_topic_new)                    \
    X(rd_kafka_topic_partition_list_add)     \
    X(rd_kafka_topic_partition_list_destroy) \
    X(rd_kafka_topic_partition_list_new)

struct rdkafka_api {
#define BROADCASTER_RDKAFKA_MEMBER(name) decltype(&::name) name = nullptr;
    BROADCASTER_RDKAFKA_FUNCTIONS(BROADCASTER_RDKAFKA_MEMBER)
#undef BROADCASTER_RDKAFKA_MEMBER
};

// Opens librdkafka as `soname` and resolves every function above. Throws system_error
// with error::backend_unavailable naming the library and the loader's reason.
rdkafka_api load_rdkafka(const char* soname);

// The SONAME of the librdkafka this build was made against (CMake reads it from the library
// found at configure time).
extern const char* const rdkafka_soname;

// The librdkafka this build was made against, loaded on the first call (thread-safe; a
// failed load is tried again on the next call). make_kafka_backend calls it first, so
// every later call finds it loaded: a check of a flag, no lookup.
inline const rdkafka_api& rdkafka() {
    static const rdkafka_api api = load_rdkafka(rdkafka_soname);
    return api;
}

}  // namespace broadcaster::detail
