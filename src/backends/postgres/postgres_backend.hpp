#pragma once

#include <broadcaster/backend.hpp>

#include <memory>

namespace broadcaster::detail {

// `postgres://` and `postgresql://`: LISTEN/NOTIFY. URL options: docs/backends/postgres.md.
std::unique_ptr<backend> make_postgres_backend(const backend_config& config);

}  // namespace broadcaster::detail
