#pragma once

// The backends the conformance suite runs against. A backend adds itself here with
// one entry; network backends read their server's URL from the environment variable
// the test scripts set, and are skipped when it is absent.

#include <cstddef>
#include <cstdlib>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

namespace broadcaster::test {

struct backend_case {
    std::string name;  // test-name suffix
    std::string url;
    // Whether two broadcasts on `url` share their channels (two app instances).
    bool shared = true;
    // Whether any bytes (NUL, invalid UTF-8) may be published.
    bool binary_safe = true;
    // Largest payload the backend must carry.
    std::size_t max_payload = 64 * 1024;

    // How GoogleTest names the case in its output.
    friend void PrintTo(const backend_case& c, std::ostream* os) { *os << c.url; }
};

inline std::vector<backend_case> backend_cases() {
    std::vector<backend_case> cases;
    cases.push_back({"memory_private", "memory://", false});
    cases.push_back({"memory_named", "memory://conformance-hub", true});
    return cases;
}

}  // namespace broadcaster::test
