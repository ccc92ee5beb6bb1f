#include "redis_stream_config.hpp"

#include "../url_options.hpp"

#include <boost/url/parse.hpp>
#include <boost/url/url.hpp>

namespace broadcaster::detail {

redis_stream_config parse_redis_stream_url(const backend_config& config) {
    const auto parsed = boost::urls::parse_uri(config.url);
    if (!parsed) {
        invalid_url(config, "not a valid URL");
    }
    boost::urls::url url = *parsed;
    if (url.scheme() == "redis-stream") {
        url.set_scheme("redis");
    } else if (url.scheme() == "rediss-stream") {
        url.set_scheme("rediss");
    } else {
        invalid_url(config, "expected redis-stream:// or rediss-stream://");
    }
    // The stream's own options are taken out; the rest is a redis:// URL.
    redis_stream_config out{redis_config(config)};
    auto params = url.params();
    for (auto it = params.begin(); it != params.end();) {
        const std::string key = (*it).key;
        const std::string value = (*it).value;
        if (key == "maxlen") {
            const auto n = option_number(config, key, value);
            if (n < 1) {
                invalid_url(config, "maxlen must be at least 1");
            }
            out.maxlen = static_cast<std::size_t>(n);
        } else if (key == "block_ms") {
            const auto n = option_number(config, key, value);
            if (n < 1) {
                invalid_url(config, "block_ms must be at least 1 (0 would block for ever)");
            }
            out.block = std::chrono::milliseconds(n);
        } else if (key == "read_count") {
            const auto n = option_number(config, key, value);
            if (n < 1) {
                invalid_url(config, "read_count must be at least 1");
            }
            out.read_count = static_cast<std::size_t>(n);
        } else {
            ++it;
            continue;
        }
        it = params.erase(it);
    }
    if (params.empty()) {
        url.remove_query();
    }
    backend_config redis = config;
    redis.url = std::string(url.buffer());
    out.redis = parse_redis_url(redis);
    return out;
}

}  // namespace broadcaster::detail
