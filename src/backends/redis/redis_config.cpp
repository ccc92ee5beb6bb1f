#include "redis_config.hpp"

#include "../url_options.hpp"

#include <broadcaster/error.hpp>

#include <boost/url/parse.hpp>

namespace broadcaster::detail {

redis_config parse_redis_url(const backend_config& config) {
    redis_config out(config);

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
            invalid_url(config, "invalid port (1 to 65535)");
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
        if (out.take(config, key, value)) {
            // a connection option
        } else if (key == "client_name") {
            out.client_name = value;
        } else if (key == "tls_verify") {
            out.tls_verify = option_bool(config, key, value);
        } else if (key == "tls_ca_file") {
            out.tls_ca_file = value;
        } else if (key == "tls_server_name") {
            out.tls_server_name = value;
        } else if (key == "max_payload_bytes") {
            const auto bytes = option_number(config, key, value);
            if (bytes < 1 ||
                static_cast<unsigned long long>(bytes) > redis_config::max_bulk_bytes) {
                invalid_url(config, "max_payload_bytes must be between 1 and " +
                                        std::to_string(redis_config::max_bulk_bytes) +
                                        " (Redis's largest bulk string)");
            }
            out.max_payload_bytes = static_cast<std::size_t>(bytes);
        } else {
            invalid_url(config, "unknown option '" + key + "'");
        }
    }
    out.finish();
    if (out.client_name.find_first_of(" \r\n") != std::string::npos) {
        invalid_url(config, "client_name must not contain spaces or newlines");
    }
    return out;
}

}  // namespace broadcaster::detail
