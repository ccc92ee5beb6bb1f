#pragma once

// Whether a client's writer is in a burst, in which it lets a few turns of the event loop
// pass before it takes its batch, so that more messages leave per system call (see
// websocket_session.cpp). A burst is a run of messages each closer than a gap to the
// one before: one short gap is no burst. At a steady rate gaps are random (Poisson:
// at 500 messages a second, 39% of gaps are under 1 ms, 6% of runs of three), and
// waiting then costs each such message those turns, as long as a whole fan-out each,
// for nothing: what is queued goes out in the batch anyway.

#include <chrono>
#include <cstdint>

namespace chat {

// Gaps shorter than `GapMicroseconds`, `Run` of them in a row, make a burst. The
// bounds are template arguments: every client holds one of these.
template <std::int64_t GapMicroseconds, std::uint8_t Run>
class burst_detector {
  public:
    using clock = std::chrono::steady_clock;

    // A message came at `now`: true if it is part of a burst.
    bool message_at(clock::time_point now) noexcept {
        const bool short_gap = now - last_ < std::chrono::microseconds(GapMicroseconds);
        last_ = now;
        if (!short_gap) {
            short_gaps_ = 0;
        } else if (short_gaps_ < Run) {
            ++short_gaps_;
        }
        return short_gaps_ >= Run;
    }

  private:
    clock::time_point last_;
    std::uint8_t short_gaps_ = 0;
};

}  // namespace chat
