#pragma once

// The backends the conformance suite runs against. A backend adds itself here with
// one entry; a network backend's URL starts its test server (test_servers.hpp).

#include "test_servers.hpp"

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
    // The URL to test; may start the backend's test server on first use.
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
    cases.push_back({"memory_private", [] { return "memory://"; }, false});
    cases.push_back({"memory_named", [] { return "memory://conformance-hub"; }, true});
#ifdef BROADCASTER_WITH_REDIS
    cases.push_back({"redis", redis_test_url, true, true, 1024 * 1024});
#endif
#ifdef BROADCASTER_WITH_POSTGRES
    // Payloads NOTIFY cannot carry (8000 bytes and more, binary) go through a table.
    cases.push_back({"postgres", postgres_test_url, true, true, 1024 * 1024});
#endif
#ifdef BROADCASTER_WITH_KAFKA
    cases.push_back({"kafka", kafka_test_url, true, true, 1024 * 1024});
#endif
    return cases;
}

}  // namespace broadcaster::test
