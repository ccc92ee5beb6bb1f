// The backend's history defaults: no history, and the numeric order of positions.

#include "completion.hpp"
#include "history_position.hpp"

#include <broadcaster/backend.hpp>
#include <broadcaster/error.hpp>

#include <charconv>

namespace broadcaster {

namespace detail {

namespace {
std::optional<std::uint64_t> parse_number(std::string_view text) noexcept {
    std::uint64_t n = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
    if (text.empty() || ec != std::errc() || end != text.data() + text.size()) {
        return std::nullopt;
    }
    return n;
}
}  // namespace

std::optional<std::pair<std::uint64_t, std::uint64_t>> parse_numeric_position(
    std::string_view position) noexcept {
    const auto dash = position.find('-');
    const auto major = parse_number(position.substr(0, dash));
    if (!major) {
        return std::nullopt;
    }
    if (dash == std::string_view::npos) {
        return std::pair{*major, std::uint64_t{0}};
    }
    const auto minor = parse_number(position.substr(dash + 1));
    if (!minor) {
        return std::nullopt;
    }
    return std::pair{*major, *minor};
}

}  // namespace detail

void backend::async_history(std::string, history_query, history_handler handler) {
    detail::post_completion(std::move(handler), executor(),
                            boost::system::error_code(error::history_not_supported),
                            std::vector<event>());
}

bool backend::position_before(std::string_view a, std::string_view b) const {
    const auto x = detail::parse_numeric_position(a);
    const auto y = detail::parse_numeric_position(b);
    if (x && y) {
        return *x < *y;
    }
    // Not numeric: a backend with other positions overrides this. Some total order
    // still, so the seam never loops or keeps both of two equal positions.
    return a < b;
}

}  // namespace broadcaster
