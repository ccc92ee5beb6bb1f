#pragma once

#include "../url_options.hpp"

#include <broadcaster/backend.hpp>

#include <chrono>
#include <string>
#include <utility>
#include <vector>

namespace broadcaster::detail {

// librdkafka settings as (name, value) pairs, applied in order (later ones win).
using kafka_settings = std::vector<std::pair<std::string, std::string>>;

// A `kafka://host:port[,host:port...][?options]` URL. See docs/backends/kafka.md.
struct kafka_config : connection_options {
    using connection_options::connection_options;

    std::string bootstrap_servers;  // "host:port,host:port"
    std::string topic_prefix;
    // Given in the URL: for both clients, then for the producer or consumer only.
    // May contain a password (sasl.password): never log them.
    kafka_settings common;
    kafka_settings producer;
    kafka_settings consumer;
};

// Throws system_error(error::invalid_url) naming what is wrong, password masked.
// librdkafka settings are checked here, so that a bad one fails the constructor.
kafka_config parse_kafka_url(const backend_config& config);

// The topic of `channel`, or an empty string when Kafka cannot name a topic so
// (legal topic names: 1 to 249 of [a-zA-Z0-9._-], not "." or "..").
std::string kafka_topic(const std::string& prefix, const std::string& channel);

}  // namespace broadcaster::detail
