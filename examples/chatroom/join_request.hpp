#pragma once

// What a WebSocket upgrade asks of the room: the frame format (plain text, or the
// JSON frames of the broadcaster.v1 subprotocol) and where to start (the room's recent
// history, or everything after a position the client saw). Plain strings in, so it is
// testable without a server.

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace chat {

// The subprotocol of JSON frames that carry positions (see docs/chat.md).
inline constexpr std::string_view json_subprotocol = "broadcaster.v1";

// Longest `since` accepted: positions are short (a stream ID, an offset).
inline constexpr std::size_t max_position_bytes = 256;

struct join_request {
    bool json_frames = false;          // the client offered broadcaster.v1
    std::optional<std::string> since;  // ?since=POSITION, percent-decoded
    std::string problem;               // why the upgrade is refused (400); empty if it is not
};

// Parses an upgrade's target ("/" or "/?since=POSITION"; other query parameters are
// ignored) and its Sec-WebSocket-Protocol field values (each a comma-separated list).
join_request parse_join(std::string_view target, const std::vector<std::string_view>& protocols);

// The path of a request target, without its query.
std::string_view target_path(std::string_view target);

}  // namespace chat
