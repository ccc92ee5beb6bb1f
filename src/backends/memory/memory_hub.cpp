#include "memory_hub.hpp"

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

bool memory_hub::publish(const event& ev, const endpoint* publisher) {
    bool publisher_subscribed = false;
    std::lock_guard lock(mutex_);
    const auto it = channels_.find(ev.channel());
    if (it == channels_.end()) {
        return false;
    }
    for (const auto& e : it->second) {
        if (e.get() == publisher) {
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
