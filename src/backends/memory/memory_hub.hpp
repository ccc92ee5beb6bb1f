#pragma once

#include <broadcaster/backend.hpp>

#include <boost/asio/any_io_executor.hpp>

#include <memory>
#include <mutex>
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
    // already on its own strand).
    bool publish(const event& ev, const endpoint* publisher);

  private:
    struct string_hash {
        using is_transparent = void;
        std::size_t operator()(std::string_view s) const noexcept {
            return std::hash<std::string_view>{}(s);
        }
    };

    std::mutex mutex_;
    std::unordered_map<std::string, std::vector<std::shared_ptr<endpoint>>, string_hash,
                       std::equal_to<>>
        channels_;
};

}  // namespace broadcaster::detail
