#pragma once

#include <broadcaster/backend.hpp>

#include <memory>

namespace broadcaster::detail {

// `redis-cluster://` and `rediss-cluster://` (TLS): Redis 7 sharded pub/sub
// (SSUBSCRIBE/SPUBLISH) on a Redis Cluster. See docs/backends/redis-cluster.md.
std::unique_ptr<backend> make_redis_cluster_backend(const backend_config& config);

}  // namespace broadcaster::detail
