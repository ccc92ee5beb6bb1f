#pragma once

#include "../url_options.hpp"

#include <broadcaster/backend.hpp>

#include <chrono>
#include <string>

namespace broadcaster::detail {

// A `postgres://` or `postgresql://` URL: our own options taken out, the rest handed
// to libpq as its connection URI. See the README's option table.
struct postgres_config : connection_options {
    using connection_options::connection_options;

    std::string conninfo;  // for PQconnectStart; contains the password
    std::string payload_table = "broadcaster_payloads";
    std::chrono::seconds payload_retention{60};
};

// Throws system_error(error::invalid_url) naming what is wrong, password masked.
postgres_config parse_postgres_url(const backend_config& config);

}  // namespace broadcaster::detail
