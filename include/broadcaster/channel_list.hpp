#pragma once

/// @file
/// `broadcaster::channel_list`: one or several channel names, as subscribe takes them.

#include <broadcaster/export.hpp>

#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

namespace broadcaster {

/// One or several channel names. Converts implicitly from a single name
/// (`"chatroom"`, a `std::string`), a braced list (`{"a", "b"}`) or a
/// `std::vector<std::string>`, so `async_subscribe` takes any of them.
/// Duplicate names are kept once.
class BROADCASTER_EXPORT channel_list {
  public:
    /// One channel.
    channel_list(const char* channel) : names_{std::string(channel)} {}
    /// One channel.
    channel_list(std::string channel) : names_{std::move(channel)} {}
    /// One channel.
    channel_list(std::string_view channel) : names_{std::string(channel)} {}
    /// Several channels: `{"a", "b"}`.
    channel_list(std::initializer_list<std::string_view> channels);
    /// Several channels.
    channel_list(std::vector<std::string> channels);

    /// The names, without duplicates, in first-seen order.
    const std::vector<std::string>& names() const& noexcept { return names_; }
    /// The names, moved out.
    std::vector<std::string> names() && noexcept { return std::move(names_); }

  private:
    void remove_duplicates();
    std::vector<std::string> names_;
};

}  // namespace broadcaster
