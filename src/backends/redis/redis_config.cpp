#include "redis_config.hpp"

#include <broadcaster/error.hpp>

#include <boost/url/parse.hpp>

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

bool to_bool(const backend_config& config, const std::string& key, const std::string& value) {
    if (value == "true" || value == "1" || value == "yes") {
        return true;
    }
    if (value == "false" || value == "0" || value == "no") {
        return false;
    }
    fail(config, "option " + key + " needs true or false, not '" + value + "'");
}

}  // namespace

redis_config parse_redis_url(const backend_config& config) {
    redis_config out;
    out.redacted_url = config.redacted_url;
    out.connect_timeout = config.options.connect_timeout;
    out.publish_timeout = config.options.publish_timeout;
    out.reconnect_min = config.options.reconnect_backoff_min;
    out.reconnect_max = config.options.reconnect_backoff_max;

    const auto parsed = boost::urls::parse_uri(config.url);
    if (!parsed) {
        fail(config, "not a valid URL");
    }
    const auto& url = *parsed;
    if (url.scheme() == "rediss") {
        out.tls = true;
    } else if (url.scheme() != "redis") {
        fail(config, "expected redis:// or rediss://");
    }
    if (url.has_userinfo()) {
        out.user = url.user();
        out.password = url.password();
    }
    if (!url.host().empty()) {
        out.host = url.host_type() == boost::urls::host_type::ipv6 ? url.host_address()
                                                                   : std::string(url.host());
    }
    if (url.has_port()) {
        if (url.port().empty() || url.port_number() == 0) {
            fail(config, "invalid port '" + std::string(url.port()) + "'");
        }
        out.port = url.port();
    }
    std::string path = url.path();
    if (!path.empty() && path != "/") {
        out.db = static_cast<int>(to_number(config, "database (the URL path)", path.substr(1)));
    }
    for (const auto& param : url.params()) {
        const std::string key = param.key;
        const std::string value = param.value;
        if (key == "connect_timeout_ms") {
            out.connect_timeout = std::chrono::milliseconds(to_number(config, key, value));
        } else if (key == "publish_timeout_ms") {
            out.publish_timeout = std::chrono::milliseconds(to_number(config, key, value));
        } else if (key == "reconnect_min_ms") {
            out.reconnect_min = std::chrono::milliseconds(to_number(config, key, value));
        } else if (key == "reconnect_max_ms") {
            out.reconnect_max = std::chrono::milliseconds(to_number(config, key, value));
        } else if (key == "client_name") {
            out.client_name = value;
        } else if (key == "tls_verify") {
            out.tls_verify = to_bool(config, key, value);
        } else if (key == "tls_ca_file") {
            out.tls_ca_file = value;
        } else if (key == "tls_server_name") {
            out.tls_server_name = value;
        } else {
            fail(config, "unknown option '" + key + "'");
        }
    }
    if (out.reconnect_max < out.reconnect_min) {
        out.reconnect_max = out.reconnect_min;
    }
    if (out.client_name.find_first_of(" \r\n") != std::string::npos) {
        fail(config, "client_name must not contain spaces or newlines");
    }
    return out;
}

}  // namespace broadcaster::detail
