#pragma once

#include "../../history_position.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace broadcaster::detail {

// A Redis stream entry ID, `MS-SEQ`, ordered as Redis orders them.
struct stream_id {
    std::uint64_t ms = 0;
    std::uint64_t seq = 0;

    // `MS-SEQ` or `MS` (as Redis accepts); nothing for anything else.
    static std::optional<stream_id> parse(std::string_view text) noexcept {
        const auto pair = parse_numeric_position(text);
        if (!pair) {
            return std::nullopt;
        }
        return stream_id{pair->first, pair->second};
    }

    std::string str() const { return std::to_string(ms) + "-" + std::to_string(seq); }

    friend auto operator<=>(const stream_id&, const stream_id&) = default;
};

}  // namespace broadcaster::detail
