#pragma once

#include "../url_options.hpp"

#include <broadcaster/backend.hpp>

#include <chrono>
#include <cstddef>
#include <string>

namespace broadcaster::detail {

// Everything a `redis://` or `rediss://` URL says; see docs/backends/redis.md.
struct redis_config : connection_options {
    using connection_options::connection_options;

    bool tls = false;
    std::string host = "localhost";
    std::string port = "6379";
    std::string user;      // ACL user; empty: "default"
    std::string password;  // empty: no AUTH
    int db = 0;
    std::string client_name = "broadcaster";
    bool tls_verify = true;
    std::string tls_ca_file;      // empty: the system's trusted CAs
    std::string tls_server_name;  // empty: `host`
    // Largest message a publish accepts. Redis drops a subscriber connection whose
    // output buffer passes `client-output-buffer-limit pubsub` (32 MB hard, 8 MB soft
    // by default), and with it the message, silently: refuse those up front.
    std::size_t max_payload_bytes = default_max_payload_bytes;

    static constexpr std::size_t default_max_payload_bytes = 8u * 1024 * 1024;
    // Redis refuses bulk strings over 512 MiB (proto-max-bulk-len).
    static constexpr std::size_t max_bulk_bytes = 512u * 1024 * 1024;
};

// Parses `config.url`. Throws system_error(error::invalid_url) naming what is wrong,
// with the password masked.
redis_config parse_redis_url(const backend_config& config);

}  // namespace broadcaster::detail
