// The linger backend (see linger_backend.hpp). What a backend author can copy from it:
// - State that posted work reaches (timer handlers, cancellation, deliveries) lives in a
//   shared_ptr the backend owns, and is reached through a weak_ptr: the broadcast may
//   destroy the backend, on any thread, between two calls.
// - Every handler is completed through backend::complete, exactly once: by the flush,
//   by a cancellation, by a disconnect or by the destructor.
// - Handlers wait in a std::map by id (in publish order, cancellable by id): a node
//   container, because any_completion_handler must never be assigned.

#include "linger_backend.hpp"

#include <broadcaster/error.hpp>

#include <boost/asio/cancellation_type.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/url/parse.hpp>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <list>
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace linger_example {
namespace {

namespace asio = boost::asio;
using boost::system::error_code;
using broadcaster::backend;
using broadcaster::backend_sink;
using broadcaster::event;
using completion_handler = backend::completion_handler;

constexpr std::size_t max_batch = 1024;

// The broker: which broadcasts subscribe to which channel. Thread-safe.
class hub {
  public:
    // One connected broadcast: where its events go.
    struct member {
        asio::any_io_executor executor;
        std::weak_ptr<backend_sink> sink;
    };

    // The hub called `name`, created on first use and kept while a backend holds it.
    static std::shared_ptr<hub> named(const std::string& name) {
        static std::mutex mutex;
        static std::map<std::string, std::weak_ptr<hub>> hubs;
        std::lock_guard lock(mutex);
        auto found = hubs[name].lock();
        if (!found) {
            found = std::make_shared<hub>();
            hubs[name] = found;
        }
        return found;
    }

    void subscribe(const std::string& channel, const std::shared_ptr<member>& m) {
        std::lock_guard lock(mutex_);
        auto& members = channels_[channel];
        if (std::find(members.begin(), members.end(), m) == members.end()) {
            members.push_back(m);
        }
    }

    void unsubscribe(const std::string& channel, const member* m) {
        std::lock_guard lock(mutex_);
        if (const auto it = channels_.find(channel); it != channels_.end()) {
            std::erase_if(it->second, [&](const auto& p) { return p.get() == m; });
            if (it->second.empty()) {
                channels_.erase(it);
            }
        }
    }

    void leave(const member* m) {
        std::lock_guard lock(mutex_);
        for (auto& [channel, members] : channels_) {
            std::erase_if(members, [&](const auto& p) { return p.get() == m; });
        }
        std::erase_if(channels_, [](const auto& entry) { return entry.second.empty(); });
    }

    // Hands every subscribed member its share of `batch`, posted to its strand. Posting
    // under the lock keeps one order of batches for every member.
    void publish(const std::vector<event>& batch) {
        std::lock_guard lock(mutex_);
        std::map<std::shared_ptr<member>, std::vector<event>> shares;
        for (const auto& ev : batch) {
            if (const auto it = channels_.find(ev.channel()); it != channels_.end()) {
                for (const auto& m : it->second) {
                    shares[m].push_back(ev);  // shares the message body, no copy
                }
            }
        }
        for (auto& [m, events] : shares) {
            asio::post(m->executor, [sink = m->sink, events = std::move(events)] {
                if (const auto s = sink.lock()) {  // the broadcast may be gone
                    for (const auto& ev : events) {
                        s->deliver(ev);
                    }
                }
            });
        }
    }

  private:
    std::mutex mutex_;
    std::map<std::string, std::vector<std::shared_ptr<member>>, std::less<>> channels_;
};

// Everything of one backend that outlives a call. Used on the backend's strand only.
class linger_state : public std::enable_shared_from_this<linger_state> {
  public:
    linger_state(asio::any_io_executor executor, std::weak_ptr<backend_sink> sink,
                 std::shared_ptr<hub> h, std::chrono::milliseconds linger)
        : executor_(executor),
          sink_(std::move(sink)),
          hub_(std::move(h)),
          linger_(linger),
          timer_(executor) {}

    // The backend is gone: what is pending ends with operation_aborted.
    ~linger_state() {
        leave();
        abort_queued();
        for (auto& handler : disconnects_) {
            backend::complete(std::move(handler), executor_, asio::error::operation_aborted);
        }
    }

    void connect(completion_handler handler) {
        if (!member_) {
            member_ = std::make_shared<hub::member>(hub::member{executor_, sink_});
        }
        backend::complete(std::move(handler), executor_, {});
    }

    // Completes once the flush timer's handler has run: no work of ours is left.
    void disconnect(completion_handler handler) {
        leave();
        abort_queued();
        if (!waiting_) {
            backend::complete(std::move(handler), executor_, {});
            return;
        }
        timer_.cancel();
        disconnects_.push_back(std::move(handler));
    }

    void subscribe(const std::string& channel, completion_handler handler) {
        if (member_) {
            hub_->subscribe(channel, member_);  // later batches include this member
        }
        backend::complete(std::move(handler), executor_, status());
    }

    void unsubscribe(const std::string& channel, completion_handler handler) {
        if (member_) {
            hub_->unsubscribe(channel, member_.get());
        }
        backend::complete(std::move(handler), executor_, status());
    }

    void publish(std::string channel, std::string message, completion_handler handler) {
        if (!member_) {
            backend::complete(std::move(handler), executor_, status());
            return;
        }
        const auto id = ++last_id_;
        auto slot = asio::get_associated_cancellation_slot(handler);
        queue_.emplace(id,
                       queued{event(std::move(channel), std::move(message)), std::move(handler)});
        if (slot.is_connected()) {
            // Runs on the thread emitting the cancellation: only post from here.
            slot.assign(
                [weak = weak_from_this(), executor = executor_, id](asio::cancellation_type) {
                    asio::post(executor, [weak, id] {
                        if (const auto self = weak.lock()) {
                            self->cancel(id);
                        }
                    });
                });
        }
        if (queue_.size() >= max_batch) {
            flush();
        } else if (!waiting_) {
            waiting_ = true;
            timer_.expires_after(linger_);
            timer_.async_wait([weak = weak_from_this()](error_code) {
                if (const auto self = weak.lock()) {
                    self->timer_fired();
                }
            });
        }
    }

  private:
    struct queued {
        event ev;
        completion_handler handler;
    };

    error_code status() const {
        return member_ ? error_code() : error_code(broadcaster::error::not_connected);
    }

    void timer_fired() {
        waiting_ = false;
        flush();
        for (auto& handler : disconnects_) {
            backend::complete(std::move(handler), executor_, {});
        }
        disconnects_.clear();
    }

    // Hands what is queued to the hub as one batch, then completes its publishes.
    void flush() {
        auto batch = std::move(queue_);
        queue_.clear();
        if (batch.empty()) {
            return;
        }
        std::vector<event> events;
        events.reserve(batch.size());
        for (const auto& [id, q] : batch) {
            events.push_back(q.ev);
        }
        hub_->publish(events);
        for (auto& [id, q] : batch) {
            backend::complete(std::move(q.handler), executor_, {});
        }
    }

    // A queued publish is taken out unsent; one already flushed is left alone.
    void cancel(std::uint64_t id) {
        if (auto node = queue_.extract(id)) {
            backend::complete(std::move(node.mapped().handler), executor_,
                              asio::error::operation_aborted);
        }
    }

    void abort_queued() {
        for (auto& [id, q] : queue_) {
            backend::complete(std::move(q.handler), executor_, asio::error::operation_aborted);
        }
        queue_.clear();
    }

    void leave() {
        if (member_) {
            hub_->leave(member_.get());
            member_.reset();
        }
    }

    const asio::any_io_executor executor_;
    const std::weak_ptr<backend_sink> sink_;
    const std::shared_ptr<hub> hub_;
    const std::chrono::milliseconds linger_;
    std::shared_ptr<hub::member> member_;    // set while connected
    std::map<std::uint64_t, queued> queue_;  // publishes not flushed yet, by id
    std::uint64_t last_id_ = 0;
    asio::steady_timer timer_;
    bool waiting_ = false;                       // a timer wait is pending
    std::list<completion_handler> disconnects_;  // waiting for that wait to end
};

// The backend the broadcast drives: it forwards every call to its state.
class linger_backend final : public backend {
  public:
    linger_backend(std::shared_ptr<hub> h, std::chrono::milliseconds linger)
        : hub_(std::move(h)), linger_(linger) {}

    void async_connect(completion_handler handler) override { state().connect(std::move(handler)); }
    void async_disconnect(completion_handler handler) override {
        state().disconnect(std::move(handler));
    }
    void async_subscribe(std::string channel, completion_handler handler) override {
        state().subscribe(channel, std::move(handler));
    }
    void async_unsubscribe(std::string channel, completion_handler handler) override {
        state().unsubscribe(channel, std::move(handler));
    }
    void async_publish(std::string channel, std::string message,
                       completion_handler handler) override {
        state().publish(std::move(channel), std::move(message), std::move(handler));
    }

  private:
    // Made on the first call: executor() and weak_sink() are set by then.
    linger_state& state() {
        if (!state_) {
            state_ = std::make_shared<linger_state>(executor(), weak_sink(), hub_, linger_);
        }
        return *state_;
    }

    const std::shared_ptr<hub> hub_;
    const std::chrono::milliseconds linger_;
    std::shared_ptr<linger_state> state_;
};

[[noreturn]] void invalid_url(const broadcaster::backend_config& config, const std::string& why) {
    throw boost::system::system_error(broadcaster::error::invalid_url,
                                      "'" + config.redacted_url + "': " + why);
}

}  // namespace

std::unique_ptr<backend> make_linger_backend(const broadcaster::backend_config& config) {
    const auto url = boost::urls::parse_uri(config.url);
    if (!url || url->host().empty() || (!url->path().empty() && url->path() != "/") ||
        url->has_userinfo() || url->has_port() || url->has_fragment()) {
        invalid_url(config, "expected linger://NAME[?linger_ms=N]");
    }
    auto linger = std::chrono::milliseconds(1);
    for (const auto& param : url->params()) {
        int ms = -1;
        const auto& v = param.value;
        const auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), ms);
        if (param.key != "linger_ms" || ec != std::errc() || end != v.data() + v.size() || ms < 0 ||
            ms > 1000) {
            invalid_url(config, "the only option is linger_ms, from 0 to 1000");
        }
        linger = std::chrono::milliseconds(ms);
    }
    return std::make_unique<linger_backend>(hub::named(url->host()), linger);
}

void register_linger_backend() {
    broadcaster::register_backend("linger", make_linger_backend);
}

}  // namespace linger_example
