#include "url_options.hpp"

#include "reconnect_backoff.hpp"

#include <broadcaster/error.hpp>

#include <algorithm>
#include <charconv>

namespace broadcaster::detail {

void invalid_url(const backend_config& config, const std::string& why) {
    throw boost::system::system_error(error::invalid_url, "'" + config.redacted_url + "': " + why);
}

long long option_number(const backend_config& config, const std::string& key,
                        const std::string& value) {
    long long n = 0;
    const auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
    if (ec != std::errc() || end != value.data() + value.size() || n < 0) {
        // Not the value: it may be a piece of a password that a raw '/', '?' or '#' cut off.
        invalid_url(config, "option " + key + " needs a non-negative integer");
    }
    return n;
}

bool option_bool(const backend_config& config, const std::string& key, const std::string& value) {
    if (value == "true" || value == "1" || value == "yes") {
        return true;
    }
    if (value == "false" || value == "0" || value == "no") {
        return false;
    }
    invalid_url(config, "option " + key + " needs true or false");
}

namespace {

// A raw '/', '?' or '#' in a password ends the authority for a URL parser: the rest of
// the password becomes a port, a path or a query, and the URL names another host
// (`redis://user:12/ss@host` is host "user", port 12). Such a URL is refused rather
// than guessed at; an '@' in an option value must then be percent-encoded too.
void refuse_mangled_user_information(const backend_config& config) {
    const std::string_view url = config.url;
    const auto authority = url.find("://");
    if (authority == std::string_view::npos) {
        return;
    }
    const auto authority_end = url.find_first_of("/?#", authority + 3);
    const auto last_at = url.rfind('@');
    if (authority_end != std::string_view::npos && last_at != std::string_view::npos &&
        last_at > authority_end) {
        invalid_url(config,
                    "an '@' follows the host: percent-encode '/', '?', '#' and '@' in the user "
                    "name, the password and option values (%2F, %3F, %23, %40)");
    }
}

}  // namespace

connection_options::connection_options(const backend_config& config)
    : redacted_url(config.redacted_url),
      connect_timeout(config.options.connect_timeout),
      publish_timeout(config.options.publish_timeout),
      reconnect_min(config.options.reconnect_backoff_min),
      reconnect_max(config.options.reconnect_backoff_max) {
    refuse_mangled_user_information(config);
}

bool connection_options::take(const backend_config& config, const std::string& key,
                              const std::string& value) {
    std::chrono::milliseconds* target = key == "connect_timeout_ms"   ? &connect_timeout
                                        : key == "publish_timeout_ms" ? &publish_timeout
                                        : key == "reconnect_min_ms"   ? &reconnect_min
                                        : key == "reconnect_max_ms"   ? &reconnect_max
                                                                      : nullptr;
    if (target) {
        *target = std::chrono::milliseconds(option_number(config, key, value));
    }
    return target != nullptr;
}

void connection_options::finish() {
    reconnect_min = std::max(reconnect_min, min_reconnect_delay);
    reconnect_max = std::max(reconnect_max, reconnect_min);
}

}  // namespace broadcaster::detail
