#include "json_frames.hpp"

#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>

namespace chat {

std::string message_frame(std::string_view position, std::string_view message) {
    boost::json::object frame;
    frame.reserve(2);
    frame.emplace("position", position);
    frame.emplace("message", message);
    return boost::json::serialize(frame);
}

std::string gap_frame() {
    return R"({"gap":true})";
}

}  // namespace chat
