#pragma once

#include <broadcaster/backend.hpp>

#include <memory>

namespace broadcaster::detail {

// `memory://` (a hub private to the broadcast) and `memory://NAME` (a hub shared by
// every broadcast in the process that names it). Carries any channel and payload.
std::unique_ptr<backend> make_memory_backend(const backend_config& config);

}  // namespace broadcaster::detail
