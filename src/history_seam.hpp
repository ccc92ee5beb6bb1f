#pragma once

#include <broadcaster/event.hpp>
#include <broadcaster/options.hpp>

#include <cstdint>
#include <deque>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace broadcaster::detail {

// Joins one subscriber's history of one channel to its live events, without a gap or
// a duplicate. The core confirms the live subscription first, so every event is in
// the history, or arrives live after the confirmation, or both; while the history is
// fetched, the live events are held here; then the subscriber gets the history, then
// the held events that come after the last history event, then live ones. The live
// stream may lag the history (a shared reader that has not delivered yet what the
// history fetch already saw): after the join, live events at or before the last
// delivered position are dropped as duplicates until the first one after it arrives.
// No I/O: the core feeds it, tests drive it directly.
class history_seam {
  public:
    // Whether position `a` comes before `b` (the backend's `position_before`).
    using order = std::function<bool(std::string_view a, std::string_view b)>;

    // `after`: the subscriber wants only events after this position (`since`).
    // At most `hold_limit` live events are held; past that `policy` decides, as it does
    // for the subscriber's queue (whose capacity the core passes).
    history_seam(std::optional<std::string> after, std::size_t hold_limit, overflow_policy policy,
                 order before)
        : last_(std::move(after)),
          hold_limit_(hold_limit < 1 ? 1 : hold_limit),
          policy_(policy),
          before_(std::move(before)) {}

    // A live event that arrived while the history is being fetched.
    void hold(event ev) {
        if (held_.size() >= hold_limit_) {
            ++dropped_;
            switch (policy_) {
                case overflow_policy::drop_oldest:
                    held_.pop_front();
                    break;
                case overflow_policy::drop_newest:
                    return;
                case overflow_policy::close:
                    overflowed_ = true;
                    return;
            }
        }
        held_.push_back(std::move(ev));
    }

    // The events to queue, in order, given the fetched history (oldest first): the
    // history after `after`, then the held events after the last of it. Call once.
    std::vector<event> join(std::vector<event> history) {
        joined_ = true;
        std::vector<event> out;
        out.reserve(history.size() + held_.size());
        for (auto& ev : history) {
            take(std::move(ev), out);
        }
        for (auto& ev : held_) {
            take(std::move(ev), out);
        }
        held_.clear();
        return out;
    }

    // Whether `join` has run: live events then go through `admit` instead of `hold`.
    bool joined() const noexcept { return joined_; }

    // After the join: whether the live event `ev` is new to the subscriber. False for
    // a duplicate of what the join delivered. Once it returns true, every later live
    // event is new too (a channel's live events come in order): the seam is done.
    bool admit(const event& ev) const { return !last_ || before_(*last_, ev.position()); }

    // Whether the join left nothing to compare live events with (no position was
    // delivered or asked for): the seam can go at once.
    bool done_at_join() const noexcept { return !last_; }

    // Held events discarded by the bound.
    std::uint64_t dropped() const noexcept { return dropped_; }
    // The bound was passed under overflow_policy::close: end the subscriber with
    // error::subscriber_overflow after what `join` returned.
    bool overflowed() const noexcept { return overflowed_; }
    std::size_t held() const noexcept { return held_.size(); }

  private:
    // Keeps `ev` if it comes after everything kept so far (and after `after`).
    void take(event ev, std::vector<event>& out) {
        if (last_ && !before_(*last_, ev.position())) {
            return;  // already there: a duplicate at the seam, or before `after`
        }
        last_ = std::string(ev.position());
        out.push_back(std::move(ev));
    }

    std::optional<std::string> last_;
    const std::size_t hold_limit_;
    const overflow_policy policy_;
    const order before_;
    std::deque<event> held_;
    std::uint64_t dropped_ = 0;
    bool overflowed_ = false;
    bool joined_ = false;
};

}  // namespace broadcaster::detail
