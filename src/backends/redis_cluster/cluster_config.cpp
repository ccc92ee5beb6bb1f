#include "cluster_config.hpp"

#include "../url_options.hpp"

#include <algorithm>
#include <cctype>

namespace broadcaster::detail {

redis_config cluster_config::for_node(const std::string& host, const std::string& port) const {
    redis_config out = node;
    out.host = host;
    out.port = port;
    return out;
}

cluster_config parse_cluster_url(const backend_config& config) {
    const std::string& url = config.url;
    const auto scheme_end = url.find("://");
    if (scheme_end == std::string::npos) {
        invalid_url(config, "not a valid URL");
    }
    std::string scheme = url.substr(0, scheme_end);
    std::transform(scheme.begin(), scheme.end(), scheme.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    bool tls = false;
    if (scheme == "rediss-cluster") {
        tls = true;
    } else if (scheme != "redis-cluster") {
        invalid_url(config, "expected redis-cluster:// or rediss-cluster://");
    }
    // Boost.URL would read "a:1,b:2" as one host and a path: split the list here, then
    // let the redis:// parser check each seed with the URL's userinfo and options.
    const auto authority_begin = scheme_end + 3;
    const auto authority_end = std::min(url.find_first_of("/?#", authority_begin), url.size());
    const std::string authority = url.substr(authority_begin, authority_end - authority_begin);
    const std::string rest = url.substr(authority_end);
    const auto at = authority.rfind('@');
    const std::string userinfo = at == std::string::npos ? "" : authority.substr(0, at + 1);
    const std::string hosts = at == std::string::npos ? authority : authority.substr(at + 1);

    cluster_config out{redis_config(config), {}};
    std::size_t begin = 0;
    while (begin <= hosts.size()) {
        const auto comma = std::min(hosts.find(',', begin), hosts.size());
        const std::string seed = hosts.substr(begin, comma - begin);
        if (seed.empty()) {
            invalid_url(config, "expected a list of seed nodes, host:port[,host:port...]");
        }
        const backend_config one{(tls ? "rediss://" : "redis://") + userinfo + seed + rest,
                                 config.redacted_url, config.options};
        auto parsed = parse_redis_url(one);
        if (parsed.db != 0) {
            invalid_url(config, "a Redis Cluster has only database 0 (remove the URL's path)");
        }
        out.seeds.push_back(join_address(parsed.host, parsed.port));
        if (out.seeds.size() == 1) {
            out.node = std::move(parsed);
        }
        begin = comma + 1;
    }
    return out;
}

bool split_address(const std::string& address, std::string& host, std::string& port) {
    const auto colon = address.rfind(':');
    if (colon == std::string::npos || colon == 0 || colon + 1 == address.size()) {
        return false;
    }
    host = address.substr(0, colon);
    if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
        host = host.substr(1, host.size() - 2);
    }
    port = address.substr(colon + 1);
    return true;
}

std::string join_address(const std::string& host, const std::string& port) {
    return host.find(':') == std::string::npos ? host + ":" + port : "[" + host + "]:" + port;
}

}  // namespace broadcaster::detail
