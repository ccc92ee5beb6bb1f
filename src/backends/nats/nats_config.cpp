#include "nats_config.hpp"

#include "../url_options.hpp"

#include <broadcaster/error.hpp>

#include <boost/url/parse.hpp>
#include <boost/url/url_view.hpp>

#include <algorithm>
#include <cctype>

namespace broadcaster::detail {
namespace {

constexpr std::string_view scheme_prefix = "nats://";

// One "host:port" of the server list (IPv6 as "[::1]:4222"); the port defaults to
// NATS's 4222.
std::string parse_server(const backend_config& config, std::string_view server) {
    auto host = server;
    std::string port = "4222";
    const auto colon = server.rfind(':');
    const auto bracket = server.rfind(']');
    if (colon != std::string_view::npos && (bracket == std::string_view::npos || colon > bracket)) {
        host = server.substr(0, colon);
        const auto number = option_number(config, "port", std::string(server.substr(colon + 1)));
        if (number < 1 || number > 65535) {
            invalid_url(config, "a server port is out of range (1 to 65535)");
        }
        port = std::to_string(number);
    }
    if (host.empty() || (host.front() == '[') != (host.back() == ']')) {
        // Not the text: a password with a raw '/', '?' or '#' ends up here.
        invalid_url(config, "a server address is not host:port");
    }
    return "nats://" + std::string(host) + ":" + port;
}

}  // namespace

nats_config parse_nats_url(const backend_config& config) {
    nats_config out(config);

    std::string lowered = config.url.substr(0, scheme_prefix.size());
    std::transform(lowered.begin(), lowered.end(), lowered.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    if (lowered != scheme_prefix) {
        invalid_url(config, "expected nats://host:port[,host:port...]");
    }
    // Boost.URL cannot parse a list of hosts: split the authority off by hand and let
    // Boost.URL decode the rest (user information, query) around a placeholder host.
    const std::string_view rest = std::string_view(config.url).substr(scheme_prefix.size());
    const auto authority_end = rest.find_first_of("/?#");
    const auto authority = rest.substr(0, authority_end);
    const auto at = authority.rfind('@');
    const auto hosts = at == std::string_view::npos ? authority : authority.substr(at + 1);
    const std::string userinfo =
        at == std::string_view::npos ? "" : std::string(authority.substr(0, at + 1));
    const std::string tail =
        authority_end == std::string_view::npos ? "" : std::string(rest.substr(authority_end));

    const std::string rebuilt = "nats://" + userinfo + "placeholder" + tail;  // `url` views it
    const auto parsed = boost::urls::parse_uri(rebuilt);
    if (!parsed) {
        invalid_url(config, "not a valid URL");
    }
    const boost::urls::url_view url = *parsed;
    if (!url.path().empty() && url.path() != "/") {
        invalid_url(config, "a nats:// URL has no path (subjects are channels)");
    }

    std::size_t begin = 0;
    while (begin <= hosts.size()) {
        const auto comma = std::min(hosts.find(',', begin), hosts.size());
        const auto server = hosts.substr(begin, comma - begin);
        if (server.empty()) {
            invalid_url(config, "expected nats://host:port[,host:port...]");
        }
        out.servers.push_back(parse_server(config, server));
        begin = comma + 1;
    }

    if (url.has_userinfo()) {
        if (url.has_password()) {
            out.user = url.user();
            out.password = url.password();
        } else {
            out.token = url.user();
        }
        if (out.user.empty() && out.token.empty()) {
            invalid_url(config, "empty user name or token before '@'");
        }
    }

    bool has_history = false;
    for (const auto& param : url.params()) {
        const std::string key = param.key;
        const std::string value = param.value;
        if (out.take(config, key, value)) {
            // a connection option
        } else if (key == "name") {
            out.client_name = value;
        } else if (key == "tls") {
            out.tls = option_bool(config, key, value);
        } else if (key == "tls_verify") {
            out.tls_verify = option_bool(config, key, value);
        } else if (key == "tls_ca_file") {
            out.tls_ca_file = value;
        } else if (key == "tls_server_name") {
            out.tls_server_name = value;
        } else if (key == "ping_interval_ms") {
            out.ping_interval = std::chrono::milliseconds(option_number(config, key, value));
            if (out.ping_interval.count() < 1) {
                invalid_url(config, "ping_interval_ms must be at least 1");
            }
        } else if (key == "max_pings_out") {
            const auto pings = option_number(config, key, value);
            if (pings < 1 || pings > 1000) {
                invalid_url(config, "max_pings_out must be between 1 and 1000");
            }
            out.max_pings_out = static_cast<int>(pings);
        } else if (key == "max_payload_bytes") {
            const auto bytes = option_number(config, key, value);
            if (bytes < 1 || bytes > (1ll << 30)) {
                invalid_url(config, "max_payload_bytes must be between 1 and 1073741824");
            }
            out.max_payload_bytes = static_cast<std::size_t>(bytes);
        } else if (key == "jetstream") {
            // A stream name: no '.', '*', '>', path separators or whitespace.
            const bool fits = !value.empty() && value.size() <= 64 &&
                              std::all_of(value.begin(), value.end(), [](unsigned char c) {
                                  return std::isalnum(c) || c == '-' || c == '_';
                              });
            if (!fits) {
                invalid_url(config,
                            "jetstream must be a stream name: 1 to 64 letters, digits, "
                            "'-' or '_'");
            }
            out.stream = value;
        } else if (key == "history") {
            const auto kept = option_number(config, key, value);
            if (kept < 1 || kept > 1'000'000'000) {
                invalid_url(config, "history must be between 1 and 1000000000");
            }
            out.history = kept;
            has_history = true;
        } else {
            invalid_url(config, "unknown option '" + key + "'");
        }
    }
    if (has_history && out.stream.empty()) {
        invalid_url(config, "history needs jetstream=STREAM");
    }
    out.finish();
    return out;
}

bool valid_nats_subject(const std::string& channel) {
    if (channel.empty() || channel.size() > max_subject_bytes || channel.front() == '.' ||
        channel.back() == '.' || channel.find("..") != std::string::npos) {
        return false;
    }
    return std::none_of(channel.begin(), channel.end(), [](unsigned char c) {
        return c <= 0x20 || c == 0x7f || c == '*' || c == '>';
    });
}

bool valid_nats_pattern(const std::string& pattern) {
    if (pattern.empty() || pattern.size() > max_subject_bytes || !is_nats_pattern(pattern)) {
        return false;
    }
    std::size_t start = 0;
    for (;;) {
        const auto dot = pattern.find('.', start);
        const auto token = pattern.substr(start, dot == std::string::npos ? dot : dot - start);
        const bool last = dot == std::string::npos;
        if (token == ">") {
            if (!last) {
                return false;
            }
        } else if (token != "*" && !valid_nats_subject(token)) {
            return false;  // empty, or a wildcard inside a token
        }
        if (last) {
            return true;
        }
        start = dot + 1;
    }
}

}  // namespace broadcaster::detail
