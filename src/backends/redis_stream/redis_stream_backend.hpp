#pragma once

#include <broadcaster/backend.hpp>

#include <memory>

namespace broadcaster::detail {

// `redis-stream://` and `rediss-stream://` (TLS): one Redis stream per channel, with
// history (see docs/history.md and the README's option table).
std::unique_ptr<backend> make_redis_stream_backend(const backend_config& config);

}  // namespace broadcaster::detail
