#pragma once

#include <broadcaster/backend.hpp>

#include <memory>
#include <string_view>

namespace broadcaster::detail {

// Makes the backend the registry holds for `url`'s scheme.
// Throws system_error (invalid_url, unknown_scheme, backend_not_built) whose message
// names the URL with its password masked.
std::unique_ptr<backend> make_backend(std::string_view url, const broadcast_options& options);

}  // namespace broadcaster::detail
