#include <broadcaster/channel_list.hpp>

#include <algorithm>

namespace broadcaster {

channel_list::channel_list(std::initializer_list<std::string_view> channels)
    : names_(channels.begin(), channels.end()) {
    remove_duplicates();
}

channel_list::channel_list(std::vector<std::string> channels) : names_(std::move(channels)) {
    remove_duplicates();
}

void channel_list::remove_duplicates() {
    // Lists are short; quadratic keeps the caller's order without extra allocations.
    auto end = names_.begin();
    for (auto it = names_.begin(); it != names_.end(); ++it) {
        if (std::find(names_.begin(), end, *it) == end) {
            if (end != it) {
                *end = std::move(*it);
            }
            ++end;
        }
    }
    names_.erase(end, names_.end());
}

}  // namespace broadcaster
