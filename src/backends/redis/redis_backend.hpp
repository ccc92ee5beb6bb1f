#pragma once

#include <broadcaster/backend.hpp>

#include <memory>

namespace broadcaster::detail {

// `redis://` and `rediss://` (TLS): Redis PUB/SUB. URL options: docs/backends/redis.md.
std::unique_ptr<backend> make_redis_backend(const backend_config& config);

}  // namespace broadcaster::detail
