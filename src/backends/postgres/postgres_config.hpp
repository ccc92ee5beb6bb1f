#pragma once

#include "../url_options.hpp"

#include <broadcaster/backend.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>

namespace broadcaster::detail {

// A `postgres://` or `postgresql://` URL: our own options taken out, the rest handed
// to libpq as its connection URI. See docs/backends/postgres.md.
struct postgres_config : connection_options {
    using connection_options::connection_options;

    std::string conninfo;  // for PQconnectStart; contains the password
    std::string payload_table = "broadcaster_payloads";
    std::chrono::seconds payload_retention{60};
    // history=N: the last N messages of each channel are kept in `history_table`
    // (docs/history.md); 0: no history, NOTIFY only.
    std::uint64_t history = 0;
    std::string history_table = "broadcaster_history";
    // Larger messages fail with error::payload_too_large. The ceiling is Postgres's:
    // a field (and the message carrying it) of at most 1 GB; libpq takes lengths as int.
    std::size_t max_payload_bytes = max_postgres_payload;

    static constexpr std::size_t max_postgres_payload = 1000 * 1024 * 1024;
    // Far more than a table should keep per channel; keeps position arithmetic exact.
    static constexpr std::uint64_t max_history = 1'000'000'000;
};

// Throws system_error(error::invalid_url) naming what is wrong, password masked.
postgres_config parse_postgres_url(const backend_config& config);

}  // namespace broadcaster::detail
