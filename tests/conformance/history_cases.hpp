#pragma once

// The backends the history conformance suite runs against: those that keep history.

#include "test_servers.hpp"

#include <cstdlib>
#include <functional>
#include <ostream>
#include <string>
#include <vector>

namespace broadcaster::test {

struct history_case {
    std::string name;
    std::function<std::string()> url;
    // Publishing this many events on a channel is sure to trim its oldest ones (0: no
    // number is, e.g. a broker whose retention is by time)...
    int trims_after = 0;
    // ... when each is this big (a broker that trims by bytes).
    std::size_t trim_payload_bytes = 1;

    friend void PrintTo(const history_case& c, std::ostream* os) { *os << c.name; }
};

inline std::vector<history_case> history_cases() {
    std::vector<history_case> cases;
    cases.push_back({"memory_private", [] { return "memory://?history=1000"; }, 1001});
    cases.push_back({"memory_named", [] { return "memory://history-hub?history=1000"; }, 1001});
#ifdef BROADCASTER_WITH_REDIS
    // MAXLEN ~ trims whole nodes of the stream (100 entries each by default).
    cases.push_back({"redis_stream",
                     [] {
                         const auto url = redis_test_url();
                         return "redis-stream" + url.substr(url.find("://")) + "?maxlen=1000";
                     },
                     1500});
#endif
#ifdef BROADCASTER_WITH_KAFKA
    // Retention on librdkafka's mock cluster: a partition keeps 5 MiB of batches (and
    // at most 100,000 of them), then deletes its oldest; each of these publishes is a
    // batch of its own. A real Kafka's retention is its own.
    cases.push_back({"kafka", [] { return kafka_test_url(); },
                     std::getenv("BROADCASTER_TEST_KAFKA_URL") ? 0 : 8, 1024 * 1024});
#endif
#ifdef BROADCASTER_WITH_NATS
    // MaxMsgsPerSubject: a publish beyond it deletes the subject's oldest message, exact.
    cases.push_back(
        {"nats_jetstream",
         [] { return nats_jetstream_test_url() + "?jetstream=conformance&history=1000"; }, 1001});
#endif
#ifdef BROADCASTER_WITH_POSTGRES
    // Each publish deletes what falls out of the last `history`: exact.
    cases.push_back({"postgres", [] { return postgres_test_url() + "?history=1000"; }, 1001});
#endif
    return cases;
}

}  // namespace broadcaster::test
