#pragma once

/// @file
/// `broadcaster::subscription`: the handle of a callback subscription.

#include <broadcaster/export.hpp>
#include <broadcaster/subscriber.hpp>

namespace broadcaster {

/// Keeps a callback subscription (`broadcast::async_subscribe_callback`) alive.
///
/// Move-only. Destroying it (or calling `unsubscribe`) ends the subscription: no
/// callback starts afterwards, though one already running on another thread finishes.
/// Thread safety: as `subscriber`.
class BROADCASTER_EXPORT subscription {
  public:
    /// An empty handle.
    subscription() noexcept = default;
    /// Takes over `other`'s subscription.
    subscription(subscription&& other) noexcept = default;
    /// Ends this handle's subscription, then takes over `other`'s.
    subscription& operator=(subscription&& other) noexcept = default;

    /// Ends the subscription now. Idempotent.
    void unsubscribe() noexcept { subscriber_.unsubscribe(); }

    /// The channels of the subscription.
    const std::vector<std::string>& channels() const noexcept { return subscriber_.channels(); }

    /// Number of events dropped because the callback could not keep up.
    std::uint64_t dropped() const noexcept { return subscriber_.dropped(); }

    /// Why the subscription ended (see `subscriber::error()`), or an empty code.
    boost::system::error_code error() const { return subscriber_.error(); }

    /// `error()` in words (see `subscriber::error_message()`), or an empty string.
    std::string error_message() const { return subscriber_.error_message(); }

    /// True unless empty or moved from.
    explicit operator bool() const noexcept { return static_cast<bool>(subscriber_); }

  private:
    friend class detail::broadcast_core;
    explicit subscription(subscriber sub) noexcept : subscriber_(std::move(sub)) {}
    subscriber subscriber_;
};

}  // namespace broadcaster
