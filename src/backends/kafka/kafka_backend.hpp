#pragma once

#include <broadcaster/backend.hpp>

#include <memory>

namespace broadcaster::detail {

// `kafka://host:port[,host:port...][?options]`: one topic per channel.
std::unique_ptr<backend> make_kafka_backend(const backend_config& config);

}  // namespace broadcaster::detail
