#pragma once

// The brokers the tests talk to: real servers, started on first use as children of
// the test process on free loopback ports, and stopped when it exits. An environment
// variable points the tests at an already running server instead.

#include "server_process.hpp"

#include <cstdlib>
#include <memory>
#include <string>

namespace broadcaster::test {

// A redis-server of its own: `extra` adds command-line options (e.g. a password).
inline std::unique_ptr<server_process> start_redis(const scratch_dir& dir, unsigned short port,
                                                   std::vector<std::string> extra = {}) {
    std::vector<std::string> argv{
        "redis-server",     "--port", std::to_string(port), "--bind", "127.0.0.1",
        "--save",           "",       "--appendonly",       "no",     "--dir",
        dir.path().string()};
    argv.insert(argv.end(), extra.begin(), extra.end());
    return std::make_unique<server_process>(argv, port, dir.path() / "redis.log");
}

// The URL of the Redis server shared by the tests of this process
// ($BROADCASTER_TEST_REDIS_URL, or one started here).
inline std::string redis_test_url() {
    if (const char* url = std::getenv("BROADCASTER_TEST_REDIS_URL")) {
        return url;
    }
    static scratch_dir dir("broadcaster-redis");
    static auto server = start_redis(dir, free_port());
    return "redis://127.0.0.1:" + std::to_string(server->port());
}

}  // namespace broadcaster::test
