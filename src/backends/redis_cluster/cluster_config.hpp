#pragma once

#include "../redis/redis_config.hpp"

#include <broadcaster/backend.hpp>

#include <string>
#include <vector>

namespace broadcaster::detail {

// Everything a `redis-cluster://` or `rediss-cluster://` URL says: the seed nodes and
// the options of `redis://` (credentials, TLS, timeouts, client_name, ...), which
// apply to every node of the cluster.
struct cluster_config {
    // The options shared by every node; its host and port are the first seed's.
    redis_config node;
    // Seed nodes as `host:port` ("[v6]:port" for IPv6), in the URL's order.
    std::vector<std::string> seeds;

    // The configuration of one connection to `host`:`port`, for redis_connection.
    redis_config for_node(const std::string& host, const std::string& port) const;
};

// Parses `config.url` (`redis-cluster://[user:password@]host[:port][,host[:port]...]
// [?options]`). Throws system_error(error::invalid_url) naming what is wrong, with the
// password masked; a database other than 0 is refused (a cluster has only one).
cluster_config parse_cluster_url(const backend_config& config);

// Splits "host:port" or "[v6]:port" into host and port; false if it is not one.
bool split_address(const std::string& address, std::string& host, std::string& port);

// "host:port", with brackets around an IPv6 host.
std::string join_address(const std::string& host, const std::string& port);

}  // namespace broadcaster::detail
