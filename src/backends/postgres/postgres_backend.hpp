#pragma once

#include <broadcaster/backend.hpp>

#include <memory>

namespace broadcaster::detail {

// `postgres://` and `postgresql://`: LISTEN/NOTIFY. See the README for URL options.
std::unique_ptr<backend> make_postgres_backend(const backend_config& config);

}  // namespace broadcaster::detail
