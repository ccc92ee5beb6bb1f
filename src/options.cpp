#include <broadcaster/options.hpp>

namespace broadcaster {

std::string_view to_string(connection_state state) noexcept {
    switch (state) {
        case connection_state::disconnected:
            return "disconnected";
        case connection_state::connecting:
            return "connecting";
        case connection_state::connected:
            return "connected";
        case connection_state::reconnecting:
            return "reconnecting";
    }
    return "unknown";
}

}  // namespace broadcaster
