#pragma once

#include "../redis/redis_config.hpp"

#include <chrono>
#include <cstddef>

namespace broadcaster::detail {

// Everything a `redis-stream://` or `rediss-stream://` URL says: the `redis://`
// options (see redis_config), and the stream's own.
struct redis_stream_config {
    redis_config redis;
    // XADD ... MAXLEN ~ maxlen: the events kept per channel (at least; Redis trims whole
    // nodes of the stream).
    std::size_t maxlen = 10'000;
    // How long one XREAD blocks at most. A changed channel set interrupts it at once
    // (CLIENT UNBLOCK); the timeout only bounds how long an idle read waits.
    std::chrono::milliseconds block{2'000};
    // Entries read per stream and per read.
    std::size_t read_count = 1'000;
};

// Parses `config.url`. Throws system_error(error::invalid_url) naming what is wrong,
// with the password masked.
redis_stream_config parse_redis_stream_url(const backend_config& config);

}  // namespace broadcaster::detail
