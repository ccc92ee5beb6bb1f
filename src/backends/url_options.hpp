#pragma once

// Reading a backend's URL query options, with errors that name the URL (password
// masked) and the option.

#include <broadcaster/backend.hpp>

#include <string>

namespace broadcaster::detail {

// Throws system_error(error::invalid_url): "'<redacted url>': <why>".
[[noreturn]] void invalid_url(const backend_config& config, const std::string& why);

// The option's value as a non-negative integer, or invalid_url naming it.
long long option_number(const backend_config& config, const std::string& key,
                        const std::string& value);

// The option's value as true/false (also 1/0, yes/no), or invalid_url naming it.
bool option_bool(const backend_config& config, const std::string& key, const std::string& value);

}  // namespace broadcaster::detail
