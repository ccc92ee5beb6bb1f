#pragma once

#include <broadcaster/backend.hpp>

#include <memory>

namespace broadcaster::detail {

// The `nats://` backend (core NATS publish/subscribe through nats.c).
std::unique_ptr<backend> make_nats_backend(const backend_config& config);

}  // namespace broadcaster::detail
