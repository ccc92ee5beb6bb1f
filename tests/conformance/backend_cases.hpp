#pragma once

// The backends the conformance suite runs against. A backend adds itself here with
// one entry; a network backend's URL starts its test server (test_servers.hpp).

#include "linger_backend.hpp"  // examples/custom_backend
#include "test_servers.hpp"
#ifdef BROADCASTER_WITH_REDIS
#include "redis_cluster.hpp"
#endif

#include <cstddef>
#include <cstdlib>
#include <functional>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

namespace broadcaster::test {

struct backend_case {
    std::string name;  // test-name suffix
    // The URL to test; may start the backend's test server (or register the backend)
    // on first use.
    std::function<std::string()> url;
    // Whether two broadcasts on `url` share their channels (two app instances).
    bool shared = true;
    // Whether any bytes (NUL, invalid UTF-8) may be published.
    bool binary_safe = true;
    // Largest payload the backend must carry.
    std::size_t max_payload = 64 * 1024;

    // How GoogleTest names the case in its output.
    friend void PrintTo(const backend_case& c, std::ostream* os) { *os << c.name; }
};

inline std::vector<backend_case> backend_cases() {
    std::vector<backend_case> cases;
    cases.push_back({.name = "memory_private", .url = [] { return "memory://"; }, .shared = false});
    cases.push_back({.name = "memory_named", .url = [] { return "memory://conformance-hub"; }});
    // The custom backend example, registered for its scheme as an app would do it.
    cases.push_back({.name = "custom_linger", .url = [] {
                         linger_example::register_linger_backend();
                         return "linger://conformance-hub";
                     }});
#ifdef BROADCASTER_WITH_REDIS
    cases.push_back({.name = "redis", .url = redis_test_url, .max_payload = 1024 * 1024});
    cases.push_back({.name = "redis_cluster",
                     .url = [] { return redis_cluster_test_url(); },
                     .max_payload = 1024 * 1024});
#endif
#ifdef BROADCASTER_WITH_POSTGRES
    // Payloads NOTIFY cannot carry (8000 bytes and more, binary) go through a table.
    cases.push_back({.name = "postgres", .url = postgres_test_url, .max_payload = 1024 * 1024});
#endif
#ifdef BROADCASTER_WITH_KAFKA
    cases.push_back({.name = "kafka", .url = kafka_test_url, .max_payload = 1024 * 1024});
#endif
#ifdef BROADCASTER_WITH_NATS
    // Up to the server's max_payload (1 MiB by default, which the publish header shares).
    cases.push_back({"nats", nats_test_url, true, true, 1000 * 1000});
#endif
    return cases;
}

}  // namespace broadcaster::test
