#include "url_options.hpp"

#include <broadcaster/error.hpp>

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

}  // namespace broadcaster::detail
