#pragma once

/// @file
/// `linger://NAME[?linger_ms=N]`: an example backend, written against the library's
/// public headers only. docs/custom-backends.md walks through it.
///
/// An in-process broker shared by every broadcast of the process that names the same
/// hub, whose publishes linger: each broadcast collects its publishes for `linger_ms`
/// milliseconds (default 1, at most 1000), or until 1024 wait, and hands them to the hub
/// as one batch, as a Kafka producer does with `linger.ms`. A publish completes once its
/// batch is in the hub; until then it can be cancelled (every cancellation type), and it
/// is never sent.

#include <broadcaster/backend.hpp>

#include <memory>

namespace linger_example {

/// Makes a linger backend for `config.url`. Throws `boost::system::system_error` with
/// `broadcaster::error::invalid_url` for a URL that is not `linger://NAME` with an
/// optional `linger_ms` option.
std::unique_ptr<broadcaster::backend> make_linger_backend(
    const broadcaster::backend_config& config);

/// Registers `make_linger_backend` for the `linger` scheme. Thread-safe.
void register_linger_backend();

}  // namespace linger_example
