// A process maps a broker's client library (and what that library pulls in: TLS,
// Kerberos, LDAP, compression) only once a broadcast of that broker's scheme is made,
// and OpenSSL only once a broadcast needs TLS (rediss://) or SHA-256 (postgres://).
// Alone in its executable: another test of the same process could have loaded a library
// first. The test executables must not link these libraries themselves.

#include "test_servers.hpp"
#include "test_support.hpp"

#include <fstream>
#include <string>
#include <vector>

namespace broadcaster::test {
namespace {

using asio::use_awaitable;

// Whether a file whose name starts with `library` (e.g. "libpq.so") is mapped into this
// process.
bool mapped(const std::string& library) {
    std::ifstream maps("/proc/self/maps");
    std::string line;
    while (std::getline(maps, line)) {
        if (line.find("/" + library) != std::string::npos) {
            return true;
        }
    }
    return false;
}

// The libraries loaded when first used, of the backends this build has.
const std::vector<std::string> loaded_when_used {
#if defined(BROADCASTER_WITH_REDIS) || defined(BROADCASTER_WITH_POSTGRES)
    "libssl.so", "libcrypto.so",
#endif
#ifdef BROADCASTER_WITH_POSTGRES
        "libpq.so",
#endif
#ifdef BROADCASTER_WITH_KAFKA
        "librdkafka.so",
#endif
#ifdef BROADCASTER_WITH_NATS
        "libnats.so",
#endif
};

void round_trip(const std::string& url) {
    run_async_test([&](asio::io_context& io) -> asio::awaitable<void> {
        broadcast bc(io, url);
        co_await bc.async_connect(use_awaitable);
        const auto channel = unique_name("loading");
        auto sub = co_await bc.async_subscribe(channel, use_awaitable);
        co_await bc.async_publish(channel, "hello", use_awaitable);
        EXPECT_EQ((co_await receive(sub)).message(), "hello");
        co_await bc.async_disconnect(use_awaitable);
    });
}

TEST(client_library_loading, a_broker_library_is_mapped_only_once_its_backend_is_used) {
    for (const auto& library : loaded_when_used) {
        ASSERT_FALSE(mapped(library)) << "mapped before any broadcast: " << library;
    }
    round_trip("memory://");
    for (const auto& library : loaded_when_used) {
        EXPECT_FALSE(mapped(library)) << "mapped by a memory:// broadcast: " << library;
    }
#ifdef BROADCASTER_WITH_REDIS
    round_trip(redis_test_url());
    EXPECT_FALSE(mapped("libssl.so")) << "mapped by a redis:// broadcast, without TLS";
    EXPECT_FALSE(mapped("libcrypto.so")) << "mapped by a redis:// broadcast, without TLS";
    {
        asio::io_context io;
        broadcast tls(io, "rediss://127.0.0.1:1");  // TLS is set up when it is made
    }
    EXPECT_TRUE(mapped("libssl.so"));
    EXPECT_TRUE(mapped("libcrypto.so"));
#endif
#ifdef BROADCASTER_WITH_POSTGRES
    postgres_server pg;
    round_trip(pg.url());
    EXPECT_TRUE(mapped("libpq.so"));
#endif
#ifdef BROADCASTER_WITH_KAFKA
    EXPECT_FALSE(mapped("librdkafka.so")) << "mapped by a postgres:// broadcast";
    round_trip(kafka_test_url());
    EXPECT_TRUE(mapped("librdkafka.so"));
#endif
#ifdef BROADCASTER_WITH_NATS
    EXPECT_FALSE(mapped("libnats.so")) << "mapped by another backend's broadcast";
    round_trip(nats_test_url());
    EXPECT_TRUE(mapped("libnats.so"));
#endif
}

}  // namespace
}  // namespace broadcaster::test
