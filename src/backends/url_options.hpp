#pragma once

// Reading a backend's URL query options, with errors that name the URL (password
// masked) and the option.

#include <broadcaster/backend.hpp>

#include <chrono>
#include <string>

namespace broadcaster::detail {

// Throws system_error(error::invalid_url): "'<redacted url>': <why>".
[[noreturn]] void invalid_url(const backend_config& config, const std::string& why);

// The option's value as a non-negative integer, or invalid_url naming the option (never
// the value: what looks like an option may be a piece of a mangled password).
long long option_number(const backend_config& config, const std::string& key,
                        const std::string& value);

// The option's value as true/false (also 1/0, yes/no), or invalid_url naming it.
bool option_bool(const backend_config& config, const std::string& key, const std::string& value);

// What every network backend's configuration starts with: the broadcast's options,
// which the URL's query options override.
struct connection_options {
    std::string redacted_url;
    std::chrono::milliseconds connect_timeout{};
    std::chrono::milliseconds publish_timeout{};
    std::chrono::milliseconds reconnect_min{};
    std::chrono::milliseconds reconnect_max{};

    // From the broadcast's options. Refuses (invalid_url) a URL with an '@' after the
    // host: a password holding a raw '/', '?' or '#' would make it name another host.
    explicit connection_options(const backend_config& config);

    // Takes `key=value` if it is connect_timeout_ms, publish_timeout_ms,
    // reconnect_min_ms or reconnect_max_ms (invalid_url for a bad value); false if the
    // option is not one of these.
    bool take(const backend_config& config, const std::string& key, const std::string& value);

    // Once every option is read: a reconnect_min below min_reconnect_delay (10 ms) is
    // raised to it (0 would mean no backoff at all), then a reconnect_max below
    // reconnect_min to reconnect_min.
    void finish();
};

}  // namespace broadcaster::detail
