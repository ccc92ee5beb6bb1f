#include "memory_hub.hpp"

#include "../../history_position.hpp"

#include <broadcaster/error.hpp>

#include <boost/asio/post.hpp>

#include <algorithm>
#include <map>

namespace broadcaster::detail {

std::shared_ptr<memory_hub> memory_hub::named(const std::string& name) {
    static std::mutex mutex;
    static std::map<std::string, std::weak_ptr<memory_hub>> hubs;
    std::lock_guard lock(mutex);
    auto& slot = hubs[name];
    auto hub = slot.lock();
    if (!hub) {
        hub = std::make_shared<memory_hub>();
        slot = hub;
    }
    return hub;
}

void memory_hub::subscribe(const std::string& channel,
                           const std::shared_ptr<endpoint>& subscriber) {
    std::lock_guard lock(mutex_);
    auto& endpoints = channels_[channel];
    if (std::find(endpoints.begin(), endpoints.end(), subscriber) == endpoints.end()) {
        endpoints.push_back(subscriber);
    }
}

void memory_hub::unsubscribe(const std::string& channel, const endpoint* subscriber) {
    std::lock_guard lock(mutex_);
    const auto it = channels_.find(channel);
    if (it == channels_.end()) {
        return;
    }
    std::erase_if(it->second, [&](const auto& e) { return e.get() == subscriber; });
    if (it->second.empty()) {
        channels_.erase(it);
    }
}

void memory_hub::unsubscribe_all(const endpoint* subscriber) {
    std::lock_guard lock(mutex_);
    for (auto it = channels_.begin(); it != channels_.end();) {
        std::erase_if(it->second, [&](const auto& e) { return e.get() == subscriber; });
        it = it->second.empty() ? channels_.erase(it) : std::next(it);
    }
}

bool memory_hub::publish(event& ev, const endpoint* publisher) {
    bool publisher_subscribed = false;
    std::lock_guard lock(mutex_);
    if (history_limit_ > 0) {
        // Numbered and kept under the lock that also orders the posts below: positions
        // increase in the order every receiver sees.
        auto& h = history_[std::string(ev.channel())];
        ev = event(std::string(ev.channel()), std::string(ev.message()), std::to_string(++h.last));
        h.ring.push_back(ev);
        while (h.ring.size() > history_limit_) {
            h.ring.pop_front();
        }
    }
    const auto it = channels_.find(ev.channel());
    if (it == channels_.end()) {
        return false;
    }
    for (const auto& e : it->second) {
        // The publisher delivers to itself at once, unless the hub numbers events: its
        // own would then overtake earlier-numbered ones still queued for it.
        if (e.get() == publisher && history_limit_ == 0) {
            publisher_subscribed = true;
            continue;
        }
        // Posting under the lock keeps each publisher's order on every receiver.
        boost::asio::post(e->executor, [sink = e->sink, ev] {
            if (auto s = sink.lock()) {
                s->deliver(ev);
            }
        });
    }
    return publisher_subscribed;
}

}  // namespace broadcaster::detail

namespace broadcaster::detail {

void memory_hub::keep_history(std::size_t events) {
    std::lock_guard lock(mutex_);
    history_limit_ = std::max(history_limit_, events);
}

boost::system::error_code memory_hub::history(const std::string& channel,
                                              const std::optional<std::string>& after,
                                              std::size_t limit, std::vector<event>& out) {
    std::lock_guard lock(mutex_);
    const auto it = history_.find(channel);
    const std::uint64_t last = it == history_.end() ? 0 : it->second.last;
    const std::size_t kept = it == history_.end() ? 0 : it->second.ring.size();
    std::uint64_t from = last - kept;  // the ring holds (from, last]
    if (after) {
        const auto position = parse_numeric_position(*after);
        if (!position || position->second != 0 || position->first > last) {
            return error::invalid_position;
        }
        if (position->first < from) {
            return error::history_gap;
        }
        from = position->first;
    }
    auto count = static_cast<std::size_t>(last - from);
    if (limit != 0 && count > limit) {
        count = limit;
    }
    for (std::size_t i = kept - count; i < kept; ++i) {
        out.push_back(it->second.ring[i]);
    }
    return {};
}

}  // namespace broadcaster::detail
