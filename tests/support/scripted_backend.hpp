#pragma once

// A backend that answers only when the test says so, for tests that fix the order of
// events in the core: connects and subscribes wait for `answer_*`, and `keep_handlers`
// makes it hold them even through a disconnect (a slow backend), until `release_all`.
// With `hold_publishes` it keeps publishes queued, cancellable through the handler's
// cancellation slot, as a backend with a publish queue does.
// It counts its calls and the handlers it holds, so a test can see what leaked.

#include "completion.hpp"

#include <broadcaster/backend.hpp>
#include <broadcaster/error.hpp>

#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/error.hpp>

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace broadcaster::test {

class scripted_backend final : public backend {
  public:
    struct shared {
        int alive = 0;  // backends not yet destroyed
        int connects = 0;
        int disconnects = 0;
        std::map<std::string, int> subscribes;
        std::map<std::string, int> unsubscribes;
        bool hold_connects = false;
        bool hold_publishes = false;
        bool keep_handlers = false;  // a disconnect does not complete held handlers
        scripted_backend* backend = nullptr;
    };

    explicit scripted_backend(std::shared_ptr<shared> s) : shared_(std::move(s)) {
        ++shared_->alive;
        shared_->backend = this;
    }
    ~scripted_backend() override {
        release_all();
        shared_->backend = nullptr;
        --shared_->alive;
    }

    void async_connect(completion_handler handler) override {
        ++shared_->connects;
        if (shared_->hold_connects) {
            held_.push_back({"", std::move(handler)});
            return;
        }
        answer(std::move(handler), {});
    }
    void async_disconnect(completion_handler handler) override {
        ++shared_->disconnects;
        if (!shared_->keep_handlers) {
            for (auto& h : std::exchange(held_, {})) {
                answer(std::move(h.handler), boost::asio::error::operation_aborted);
            }
            for (auto& [id, h] : std::exchange(publishes_, {})) {
                answer(std::move(h), boost::asio::error::operation_aborted);
            }
        }
        answer(std::move(handler), {});
    }
    void async_subscribe(std::string channel, completion_handler handler) override {
        ++shared_->subscribes[channel];
        held_.push_back({std::move(channel), std::move(handler)});
    }
    void async_unsubscribe(std::string channel, completion_handler handler) override {
        ++shared_->unsubscribes[channel];
        answer(std::move(handler), {});
    }
    void async_publish(std::string, std::string, completion_handler handler) override {
        if (!shared_->hold_publishes) {
            answer(std::move(handler), {});
            return;
        }
        auto slot = boost::asio::get_associated_cancellation_slot(handler);
        const auto id = ++last_publish_;
        publishes_.emplace(id, std::move(handler));
        if (slot.is_connected()) {
            slot.assign([this, id](boost::asio::cancellation_type) {
                boost::asio::dispatch(executor(), [this, id] { cancel_publish(id); });
            });
        }
    }

    // Answers the held connects (channel "") or subscribes of `channel` with `ec`.
    void answer_held(const std::string& channel, boost::system::error_code ec = {}) {
        std::vector<held> keep;
        for (auto& h : std::exchange(held_, {})) {
            if (h.channel == channel) {
                answer(std::move(h.handler), ec);
            } else {
                keep.push_back(std::move(h));
            }
        }
        held_.swap(keep);
    }
    // Destroys every held handler, uncalled (as an io_context's destruction would).
    void release_all() {
        held_.clear();
        publishes_.clear();
    }
    std::size_t held_count() const noexcept { return held_.size() + publishes_.size(); }

  private:
    struct held {
        std::string channel;
        completion_handler handler;
    };
    // A queued publish is dropped, never sent.
    void cancel_publish(std::uint64_t id) {
        if (auto node = publishes_.extract(id)) {
            answer(std::move(node.mapped()), boost::asio::error::operation_aborted);
        }
    }
    void answer(completion_handler handler, boost::system::error_code ec) {
        detail::post_completion(std::move(handler), executor(), ec);
    }

    std::shared_ptr<shared> shared_;
    std::vector<held> held_;
    std::map<std::uint64_t, completion_handler> publishes_;
    std::uint64_t last_publish_ = 0;
};

}  // namespace broadcaster::test
