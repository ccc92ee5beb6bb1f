#pragma once

// A redis-server of the test's own, so the test may kill and restart it.

#include "test_servers.hpp"

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <set>
#include <sstream>
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

    // Runs redis-cli against this server; returns what it printed ("" if it failed).
    std::string cli_output(const std::string& args) const {
        const auto command = "redis-cli -p " + std::to_string(port) + " " + args + " 2>/dev/null";
        std::string out;
        if (FILE* pipe = ::popen(command.c_str(), "r")) {
            char buffer[4096];
            for (std::size_t n; (n = std::fread(buffer, 1, sizeof buffer, pipe)) > 0;) {
                out.append(buffer, n);
            }
            ::pclose(pipe);
        }
        return out;
    }

    // The IDs of the connections of ACL user `user` (CLIENT LIST). Redis gives every
    // connection a new ID, so the same set later means nothing reconnected meanwhile.
    std::set<std::string> connection_ids(const std::string& user) const {
        std::set<std::string> ids;
        std::istringstream lines(cli_output("CLIENT LIST"));
        for (std::string line; std::getline(lines, line);) {
            if (line.find(" user=" + user + " ") != std::string::npos &&
                line.rfind("id=", 0) == 0) {
                ids.insert(line.substr(3, line.find(' ') - 3));
            }
        }
        return ids;
    }
};

// Reconnect attempts 20-200 ms apart: a restarted server is found back quickly.
inline constexpr const char* fast_reconnect = "?reconnect_min_ms=20&reconnect_max_ms=200";

}  // namespace broadcaster::test
