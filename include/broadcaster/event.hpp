#pragma once

/// @file
/// `broadcaster::event`: one message received on one channel.

#include <broadcaster/export.hpp>

#include <atomic>
#include <cstddef>
#include <string>
#include <string_view>
#include <utility>

namespace broadcaster {

/// One message received on one channel.
///
/// An event is a cheap handle to immutable data: copying it shares the channel name
/// and message body instead of copying them, so the body of one incoming event is
/// stored once however many subscribers it is fanned out to. Messages are arbitrary
/// bytes (NUL bytes included) unless a backend documents otherwise.
///
/// Thread safety: events are immutable; copies may be used from any thread.
///
/// An event is one pointer: a subscriber's queue holds each waiting event in 8 bytes.
class BROADCASTER_EXPORT event {
  public:
    /// An empty event (no channel, no message).
    event() = default;

    event(const event& other) noexcept : data_(other.data_) { retain(); }
    event(event&& other) noexcept : data_(std::exchange(other.data_, nullptr)) {}
    event& operator=(const event& other) noexcept {
        event(other).swap(*this);
        return *this;
    }
    event& operator=(event&& other) noexcept {
        event(std::move(other)).swap(*this);
        return *this;
    }
    ~event() { release(); }

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
    // Shared by every copy; freed by the last.
    struct data {
        std::string channel;
        std::string message;
        std::string position;
        mutable std::atomic<std::size_t> copies{1};
    };

    void swap(event& other) noexcept { std::swap(data_, other.data_); }
    void retain() const noexcept {
        if (data_) {
            data_->copies.fetch_add(1, std::memory_order_relaxed);
        }
    }
    void release() noexcept {
        if (data_ && data_->copies.fetch_sub(1, std::memory_order_acq_rel) == 1) {
            delete data_;
        }
    }

    const data* data_ = nullptr;
};

}  // namespace broadcaster
