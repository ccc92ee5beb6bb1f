#pragma once

/// @file
/// `broadcaster::event`: one message received on one channel.

#include <broadcaster/export.hpp>

#include <memory>
#include <string>
#include <string_view>

namespace broadcaster {

/// One message received on one channel.
///
/// An event is a cheap handle to immutable data: copying it shares the channel name
/// and message body instead of copying them, so the body of one incoming event is
/// stored once however many subscribers it is fanned out to. Messages are arbitrary
/// bytes (NUL bytes included) unless a backend documents otherwise.
///
/// Thread safety: events are immutable; copies may be used from any thread.
class BROADCASTER_EXPORT event {
  public:
    /// An empty event (no channel, no message).
    event() = default;

    /// Stores `channel` and `message` once, to be shared by every copy of the event.
    event(std::string channel, std::string message);

    /// As above, with the event's `position` in its channel (see `position()`).
    event(std::string channel, std::string message, std::string position);

    /// The channel the message was published on.
    std::string_view channel() const noexcept {
        return data_ ? std::string_view(data_->channel) : std::string_view();
    }

    /// The message body.
    std::string_view message() const noexcept {
        return data_ ? std::string_view(data_->message) : std::string_view();
    }

    /// Where the event stands in its channel's history, on a backend that keeps
    /// history (see docs/history.md): an opaque string (a sequence number on
    /// `memory://?history=N`, a stream entry ID on `redis-stream://`) that increases
    /// within the channel. Pass it as `subscribe_options::since` to resume after this
    /// event. Empty on a backend that keeps no history.
    std::string_view position() const noexcept {
        return data_ ? std::string_view(data_->position) : std::string_view();
    }

    /// True unless default-constructed.
    explicit operator bool() const noexcept { return data_ != nullptr; }

  private:
    struct data {
        std::string channel;
        std::string message;
        std::string position;
    };
    std::shared_ptr<const data> data_;
};

}  // namespace broadcaster
