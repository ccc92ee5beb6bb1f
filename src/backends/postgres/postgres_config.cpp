#include "postgres_config.hpp"

#include <broadcaster/error.hpp>

#include <boost/url/parse.hpp>
#include <boost/url/url.hpp>

#include <charconv>

namespace broadcaster::detail {
namespace {

[[noreturn]] void fail(const backend_config& config, const std::string& why) {
    throw boost::system::system_error(error::invalid_url, "'" + config.redacted_url + "': " + why);
}

long long to_number(const backend_config& config, const std::string& key,
                    const std::string& value) {
    long long n = 0;
    const auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
    if (ec != std::errc() || end != value.data() + value.size() || n < 0) {
        fail(config, "option " + key + " needs a non-negative integer, not '" + value + "'");
    }
    return n;
}

}  // namespace

postgres_config parse_postgres_url(const backend_config& config) {
    postgres_config out;
    out.redacted_url = config.redacted_url;
    out.connect_timeout = config.options.connect_timeout;
    out.publish_timeout = config.options.publish_timeout;
    out.reconnect_min = config.options.reconnect_backoff_min;
    out.reconnect_max = config.options.reconnect_backoff_max;

    auto parsed = boost::urls::parse_uri(config.url);
    if (!parsed) {
        fail(config, "not a valid URL");
    }
    boost::urls::url url(*parsed);
    if (url.scheme() != "postgres" && url.scheme() != "postgresql") {
        fail(config, "expected postgres:// or postgresql://");
    }
    // Our options are ours; everything else (sslmode, application_name, ...) is libpq's.
    auto params = url.params();
    for (auto it = params.begin(); it != params.end();) {
        const std::string key = (*it).key;
        const std::string value = (*it).value;
        bool ours = true;
        if (key == "connect_timeout_ms") {
            out.connect_timeout = std::chrono::milliseconds(to_number(config, key, value));
        } else if (key == "publish_timeout_ms") {
            out.publish_timeout = std::chrono::milliseconds(to_number(config, key, value));
        } else if (key == "reconnect_min_ms") {
            out.reconnect_min = std::chrono::milliseconds(to_number(config, key, value));
        } else if (key == "reconnect_max_ms") {
            out.reconnect_max = std::chrono::milliseconds(to_number(config, key, value));
        } else if (key == "payload_table") {
            if (value.empty() || value.size() > 63) {
                fail(config, "payload_table must be 1 to 63 bytes");
            }
            out.payload_table = value;
        } else if (key == "payload_retention_s") {
            out.payload_retention = std::chrono::seconds(to_number(config, key, value));
        } else {
            ours = false;
        }
        it = ours ? params.erase(it) : std::next(it);
    }
    if (out.reconnect_max < out.reconnect_min) {
        out.reconnect_max = out.reconnect_min;
    }
    out.conninfo = url.buffer();
    return out;
}

}  // namespace broadcaster::detail
