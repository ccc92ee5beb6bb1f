#pragma once

// The listener connection's LISTEN/UNLISTEN commands and the channels listened to,
// kept apart from I/O so that its rules can be tested step by step (a state machine in
// the manner of Boost.Redis's detail/*_fsm):
//
// - One command runs at a time; the others queue behind it, in order.
// - The only wait that may be interrupted is the idle wait for input: `push` says when
//   to interrupt it, and never while a command (or a payload fetch) is under way.
// - Every command completes exactly once: when it ran (`finish`), or when the
//   connection is lost or closed (`fail_all`), whichever comes first.
//
// `Handler` is called with an error_code; it is moved, never copied or assigned (Asio's
// any_completion_handler must not be assigned, see completion.hpp).

#include <boost/system/error_code.hpp>

#include <deque>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace broadcaster::detail {

template <typename Handler>
class listener_queue {
  public:
    struct command {
        bool listen;             // LISTEN, else UNLISTEN
        std::string channel;     // ours
        std::string pg_channel;  // as Postgres names it
        Handler handler;
    };
    struct completion {
        Handler handler;
        boost::system::error_code ec;
    };

    // Queues a command. A LISTENed channel counts as listened from now on (its
    // notifications are delivered, a reconnect LISTENs it again); an UNLISTENed one
    // no longer does. True if the driver is in its idle wait and must be woken (once:
    // later pushes return false until it waits again).
    bool push(bool listen, std::string channel, std::string pg_channel, Handler handler) {
        if (listen) {
            channels_[pg_channel] = channel;
        } else {
            channels_.erase(pg_channel);
        }
        queue_.push_back({listen, std::move(channel), std::move(pg_channel), std::move(handler)});
        return wake();
    }

    // Other work for the driver than a command (e.g. a history read) was queued: true if
    // the driver is in its idle wait and must be woken (once, as for `push`).
    bool wake() {
        if (waiting_ && !wake_requested_) {
            wake_requested_ = true;
            return true;
        }
        return false;
    }

    // An unsubscribe while there is no connection: nothing to send.
    void forget(const std::string& pg_channel) { channels_.erase(pg_channel); }

    // The driver: the next command, now running (it stays here until finished or
    // failed); null if none is queued. One at a time.
    const command* start_next() {
        if (running_ || queue_.empty()) {
            return nullptr;
        }
        running_.emplace(std::move(queue_.front()));
        queue_.pop_front();
        return &*running_;
    }

    // The driver: the running command was executed (`ec`: the server refused it). Its
    // completion; none if it already completed through `fail_all`.
    std::optional<completion> finish(boost::system::error_code ec) {
        if (!running_) {
            return std::nullopt;
        }
        command done = std::move(*running_);
        running_.reset();
        if (ec && done.listen && !queued(done.pg_channel)) {
            channels_.erase(done.pg_channel);  // not listened; a later command decides else
        }
        return completion{std::move(done.handler), ec};
    }

    // The driver, before its idle wait for input: false if there is work, then it must
    // not wait.
    bool begin_wait() {
        if (running_ || !queue_.empty()) {
            return false;
        }
        waiting_ = true;
        wake_requested_ = false;
        return true;
    }
    // The driver, after its idle wait.
    void end_wait() { waiting_ = false; }

    // The connection is lost or closed: the running and the queued commands complete
    // now, LISTENs with `ec` (their channels are not listened to), UNLISTENs with
    // success (the next connection will not listen to those channels). The driver of
    // that connection must not touch this queue again.
    std::vector<completion> fail_all(boost::system::error_code ec) {
        std::vector<completion> out;
        if (running_) {
            fail(*running_, ec, out);
            running_.reset();
        }
        for (auto& c : queue_) {
            fail(c, ec, out);
        }
        queue_.clear();
        waiting_ = false;
        wake_requested_ = false;
        return out;
    }

    // Forgets every channel too (disconnect).
    std::vector<completion> clear(boost::system::error_code ec) {
        auto out = fail_all(ec);
        channels_.clear();
        return out;
    }

    // Our name of a Postgres channel listened to; null if not listened to.
    const std::string* find(const std::string& pg_channel) const {
        const auto it = channels_.find(pg_channel);
        return it == channels_.end() ? nullptr : &it->second;
    }

    // The Postgres channels to LISTEN to on a new connection.
    std::vector<std::string> listened() const {
        std::vector<std::string> out;
        out.reserve(channels_.size());
        for (const auto& entry : channels_) {
            out.push_back(entry.first);
        }
        return out;
    }

    bool idle() const { return !running_ && queue_.empty(); }

  private:
    bool queued(const std::string& pg_channel) const {
        for (const auto& c : queue_) {
            if (c.pg_channel == pg_channel) {
                return true;
            }
        }
        return false;
    }

    void fail(command& c, boost::system::error_code ec, std::vector<completion>& out) {
        if (c.listen) {
            channels_.erase(c.pg_channel);
        }
        out.push_back(
            completion{std::move(c.handler), c.listen ? ec : boost::system::error_code()});
    }

    std::unordered_map<std::string, std::string> channels_;  // Postgres name -> ours
    std::deque<command> queue_;
    std::optional<command> running_;
    bool waiting_ = false;         // the driver is in its idle wait
    bool wake_requested_ = false;  // and has been told to stop it
};

}  // namespace broadcaster::detail
