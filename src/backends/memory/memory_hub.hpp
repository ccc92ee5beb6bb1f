#pragma once

#include <broadcaster/backend.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/system/error_code.hpp>

#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

namespace broadcaster::detail {

// An in-process broker: which memory backends subscribe to which channel.
// `memory://` gives each broadcast a hub of its own; `memory://NAME` shares one hub
// among every broadcast of the process naming it. Thread-safe.
class memory_hub {
  public:
    // One subscribing backend: where to deliver its events.
    struct endpoint {
        boost::asio::any_io_executor executor;
        std::weak_ptr<backend_sink> sink;
    };

    // The hub called `name`, created on first use and kept while anyone holds it.
    static std::shared_ptr<memory_hub> named(const std::string& name);

    void subscribe(const std::string& channel, const std::shared_ptr<endpoint>& subscriber);
    void unsubscribe(const std::string& channel, const endpoint* subscriber);
    void unsubscribe_all(const endpoint* subscriber);

    // Posts `ev` to every endpoint subscribed to its channel except `publisher`, and
    // returns whether `publisher` is subscribed too (it then delivers inline, being
    // already on its own strand). When the hub keeps history, `ev` first gets its
    // position (the channel's next sequence number) and a place in the ring.
    bool publish(event& ev, const endpoint* publisher);

    // History: keep the last `events` events of each channel (0: none). The hub keeps
    // the largest number any of its users asked for.
    void keep_history(std::size_t events);
    // The kept events of `channel` after position `after` (none: all), the `limit`
    // most recent of them (0: all), oldest first. Errors: error::history_gap when
    // events after `after` were dropped from the ring, error::invalid_position for a
    // position the hub has not given out.
    boost::system::error_code history(const std::string& channel,
                                      const std::optional<std::string>& after, std::size_t limit,
                                      std::vector<event>& out);

  private:
    struct string_hash {
        using is_transparent = void;
        std::size_t operator()(std::string_view s) const noexcept {
            return std::hash<std::string_view>{}(s);
        }
    };

    // One channel's history: the ring and the last sequence number given out.
    struct channel_history {
        std::uint64_t last = 0;
        std::deque<event> ring;
    };

    std::mutex mutex_;
    std::size_t history_limit_ = 0;
    std::unordered_map<std::string, channel_history, string_hash, std::equal_to<>> history_;
    std::unordered_map<std::string, std::vector<std::shared_ptr<endpoint>>, string_hash,
                       std::equal_to<>>
        channels_;
};

}  // namespace broadcaster::detail
