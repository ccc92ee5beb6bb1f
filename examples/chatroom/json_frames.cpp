#include "json_frames.hpp"

#include <broadcaster/utf8.hpp>

#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>

namespace chat {

std::string message_frame(std::string_view position, std::string_view message) {
    boost::json::object frame;
    frame.reserve(2);
    // JSON text is UTF-8, and another publisher may have sent any bytes.
    frame.emplace("position", broadcaster::to_valid_utf8(position));
    frame.emplace("message", broadcaster::to_valid_utf8(message));
    return boost::json::serialize(frame);
}

std::string gap_frame() {
    return R"({"gap":true})";
}

}  // namespace chat
