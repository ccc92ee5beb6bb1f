#pragma once

// The frames of the broadcaster.v1 subprotocol, one JSON object per text frame:
//   {"position":"1733140000000-0","message":"hello"}  a message and its position in the
//                                                     room ("" on a backend without history)
//   {"gap":true}                                      first, when the client asked for
//                                                     everything after a position and the
//                                                     server could not give it all

#include <string>
#include <string_view>

namespace chat {

// Bytes that are not UTF-8 become U+FFFD.
std::string message_frame(std::string_view position, std::string_view message);
std::string gap_frame();

}  // namespace chat
