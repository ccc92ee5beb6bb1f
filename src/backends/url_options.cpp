#include "url_options.hpp"

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
        invalid_url(config, "option " + key + " needs a non-negative integer, not '" + value + "'");
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
    invalid_url(config, "option " + key + " needs true or false, not '" + value + "'");
}

connection_options::connection_options(const backend_config& config)
    : redacted_url(config.redacted_url),
      connect_timeout(config.options.connect_timeout),
      publish_timeout(config.options.publish_timeout),
      reconnect_min(config.options.reconnect_backoff_min),
      reconnect_max(config.options.reconnect_backoff_max) {}

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
    reconnect_max = std::max(reconnect_max, reconnect_min);
}

}  // namespace broadcaster::detail
