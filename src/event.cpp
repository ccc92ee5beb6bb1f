#include <broadcaster/event.hpp>

namespace broadcaster {

event::event(std::string channel, std::string message)
    : data_(new data{std::move(channel), std::move(message), {}}) {}

event::event(std::string channel, std::string message, std::string position)
    : data_(new data{std::move(channel), std::move(message), std::move(position)}) {}

}  // namespace broadcaster
