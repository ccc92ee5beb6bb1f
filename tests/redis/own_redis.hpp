#pragma once

// A redis-server of the test's own, so the test may kill and restart it.

#include "test_servers.hpp"

#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

namespace broadcaster::test {

struct own_redis {
    scratch_dir dir{"broadcaster-redis-own"};
    unsigned short port = free_port();
    std::unique_ptr<server_process> server;

    explicit own_redis(std::vector<std::string> extra = {})
        : server(start_redis(dir, port, std::move(extra))) {}

    std::string url(const std::string& userinfo = "", const std::string& query = "") const {
        return "redis://" + userinfo + "127.0.0.1:" + std::to_string(port) + query;
    }

    // Runs redis-cli against this server; returns its exit status.
    int cli(const std::string& args, const std::string& auth = "") const {
        const auto command = "redis-cli -p " + std::to_string(port) +
                             (auth.empty() ? "" : " -a " + auth + " --no-auth-warning") + " " +
                             args + " > /dev/null 2>&1";
        return std::system(command.c_str());
    }
};

// Reconnect attempts 20-200 ms apart: a restarted server is found back quickly.
inline constexpr const char* fast_reconnect = "?reconnect_min_ms=20&reconnect_max_ms=200";

}  // namespace broadcaster::test
