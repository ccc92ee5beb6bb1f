#pragma once

#include <cstdint>
#include <optional>
#include <string_view>
#include <utility>

namespace broadcaster::detail {

// A position of the form `N` or `N-M` (decimal, no sign): sequence numbers, offsets
// and Redis stream IDs. `N` reads as `N-0`. Nothing for anything else.
std::optional<std::pair<std::uint64_t, std::uint64_t>> parse_numeric_position(
    std::string_view position) noexcept;

}  // namespace broadcaster::detail
