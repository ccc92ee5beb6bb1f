#pragma once

// The delays between reconnect attempts of a network backend: exponential from
// reconnect_min up to reconnect_max, with "equal jitter" (each delay is random in
// [d/2, d]) so that many instances restarting together do not reconnect in lockstep.
// A delay below min_reconnect_delay is raised to it: with 0 the loop would retry as
// fast as the CPU allows while the broker is away.

#include <algorithm>
#include <chrono>
#include <random>

namespace broadcaster::detail {

// The shortest first delay (reconnect_min_ms, reconnect_backoff_min) there is.
inline constexpr std::chrono::milliseconds min_reconnect_delay{10};

class reconnect_backoff {
  public:
    reconnect_backoff(std::chrono::milliseconds min, std::chrono::milliseconds max)
        : min_(std::max(min, min_reconnect_delay)),
          max_(std::max(min_, max)),
          ceiling_(min_),
          random_(std::random_device{}()) {}

    // The delay before the next attempt; the one after may be twice as long.
    std::chrono::milliseconds next() {
        const auto ceiling = ceiling_;
        ceiling_ = std::min(ceiling_ * 2, max_);
        std::uniform_int_distribution<long> pick(ceiling.count() / 2, ceiling.count());
        return std::chrono::milliseconds(pick(random_));
    }

    // After a success: the next loss starts again from the shortest delay.
    void reset() { ceiling_ = min_; }

  private:
    std::chrono::milliseconds min_;
    std::chrono::milliseconds max_;
    std::chrono::milliseconds ceiling_;
    std::minstd_rand random_;
};

}  // namespace broadcaster::detail
