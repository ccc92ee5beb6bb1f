#include "redis_config.hpp"

#include "../url_options.hpp"

#include <broadcaster/error.hpp>

#include <boost/url/parse.hpp>

namespace broadcaster::detail {

redis_config parse_redis_url(const backend_config& config) {
    redis_config out;
    out.redacted_url = config.redacted_url;
    out.connect_timeout = config.options.connect_timeout;
    out.publish_timeout = config.options.publish_timeout;
    out.reconnect_min = config.options.reconnect_backoff_min;
    out.reconnect_max = config.options.reconnect_backoff_max;

    const auto parsed = boost::urls::parse_uri(config.url);
    if (!parsed) {
        invalid_url(config, "not a valid URL");
    }
    const auto& url = *parsed;
    if (url.scheme() == "rediss") {
        out.tls = true;
    } else if (url.scheme() != "redis") {
        invalid_url(config, "expected redis:// or rediss://");
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
            invalid_url(config, "invalid port '" + std::string(url.port()) + "'");
        }
        out.port = url.port();
    }
    std::string path = url.path();
    if (!path.empty() && path != "/") {
        out.db = static_cast<int>(option_number(config, "database (the URL path)", path.substr(1)));
    }
    for (const auto& param : url.params()) {
        const std::string key = param.key;
        const std::string value = param.value;
        if (key == "connect_timeout_ms") {
            out.connect_timeout = std::chrono::milliseconds(option_number(config, key, value));
        } else if (key == "publish_timeout_ms") {
            out.publish_timeout = std::chrono::milliseconds(option_number(config, key, value));
        } else if (key == "reconnect_min_ms") {
            out.reconnect_min = std::chrono::milliseconds(option_number(config, key, value));
        } else if (key == "reconnect_max_ms") {
            out.reconnect_max = std::chrono::milliseconds(option_number(config, key, value));
        } else if (key == "client_name") {
            out.client_name = value;
        } else if (key == "tls_verify") {
            out.tls_verify = option_bool(config, key, value);
        } else if (key == "tls_ca_file") {
            out.tls_ca_file = value;
        } else if (key == "tls_server_name") {
            out.tls_server_name = value;
        } else {
            invalid_url(config, "unknown option '" + key + "'");
        }
    }
    if (out.reconnect_max < out.reconnect_min) {
        out.reconnect_max = out.reconnect_min;
    }
    if (out.client_name.find_first_of(" \r\n") != std::string::npos) {
        invalid_url(config, "client_name must not contain spaces or newlines");
    }
    return out;
}

}  // namespace broadcaster::detail
