#pragma once

#include "../tls/loaded_openssl.hpp"
#include "redis_config.hpp"

#include <broadcaster/backend.hpp>

#include <memory>

namespace broadcaster::detail {

// `redis://` and `rediss://` (TLS): Redis PUB/SUB. URL options: docs/backends/redis.md.
std::unique_ptr<backend> make_redis_backend(const backend_config& config);

// The TLS context of a `rediss://` configuration (null without TLS): peer and host name
// verification unless tls_verify=false, with tls_ca_file or the system's CAs. Throws
// system_error(error::invalid_url) if the CA file cannot be loaded.
// `scheme` (e.g. "rediss-cluster") names the backend if OpenSSL cannot be loaded.
std::shared_ptr<boost::asio::ssl::context> make_tls_context(const redis_config& config,
                                                            const char* scheme);

}  // namespace broadcaster::detail
