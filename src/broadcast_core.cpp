#include "broadcast_core.hpp"

#include "backend_access.hpp"
#include "callback_pump.hpp"
#include "completion.hpp"

#include <broadcaster/error.hpp>

#include <boost/asio/any_completion_executor.hpp>
#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/execution/outstanding_work.hpp>
#include <boost/asio/post.hpp>

#include <algorithm>
#include <list>

namespace broadcaster::detail {

namespace asio = boost::asio;
using boost::system::error_code;

namespace {
constexpr auto relaxed = std::memory_order_relaxed;

// Adds to a counter that only the strand writes: a plain load and store is enough.
void bump(std::atomic<std::uint64_t>& counter, std::uint64_t n = 1) noexcept {
    counter.store(counter.load(relaxed) + n, relaxed);
}

// Whether a cancellation of `type` applies. Connect and subscribe support terminal,
// partial and total cancellation alike: a cancelled one leaves nothing behind that the
// app can see (the broadcast is back where it was), which satisfies all three.
bool cancellation_requested(asio::cancellation_type type) noexcept {
    constexpr auto supported = asio::cancellation_type::terminal |
                               asio::cancellation_type::partial | asio::cancellation_type::total;
    return (type & supported) != asio::cancellation_type::none;
}

// Invokes `handler(args...)` as post_completion does, clearing `slot` first, on the
// handler's executor (where the app emits cancellation): the cancel handler installed
// there must not outlive the operation.
template <typename Handler, typename... Args>
void post_clearing(Handler handler, asio::cancellation_slot slot,
                   const asio::any_io_executor& fallback, Args... args) {
    const auto executor = asio::get_associated_executor(handler, fallback);
    post_via(executor, fallback,
             [once = move_only{}, handler = std::move(handler), slot,
              ... args = std::move(args)]() mutable {
                 if (slot.is_connected()) {
                     slot.clear();
                 }
                 std::move(handler)(std::move(args)...);
             });
}
}  // namespace

// A subscribe operation waiting for the broker to confirm each of its channels.
struct broadcast_core::pending_subscribe {
    std::shared_ptr<subscriber_state> state;
    subscribe_handler handler;
    asio::cancellation_slot slot;
    std::size_t remaining = 0;
    error_code first_error;
    bool done = false;  // completed or cancelled: later news is ignored
    // Set when the subscribe asked for history: fetched once the channels are confirmed.
    std::optional<history_query> history;
    // `since` together with `last`: more than this many events after the position is
    // a gap (the backend is asked for one more).
    std::size_t since_at_most = 0;
};

namespace {

// A disconnect or shutdown handler waiting for the backend, which may finish off the
// app's io_context (e.g. on its own threads): as Asio requires of a pending operation,
// it keeps work on the handler's executor, so the app's `run()` does not return before
// it completes.
struct waiting_handler {
    waiting_handler(error_handler h, const asio::any_io_executor& fallback) {
        if (h) {  // an empty handler has no associated executor to ask
            work = asio::prefer(asio::get_associated_executor(h, fallback),
                                asio::execution::outstanding_work.tracked);
        }
        handler.swap(h);  // not operator=: see move_only in completion.hpp
    }

    // Posts the completion, then lets go of the work: the post counts from then on.
    void complete(const asio::any_io_executor& fallback, error_code ec) && {
        if (handler) {
            post_completion(std::move(handler), fallback, ec);
        }
        work = nullptr;
    }

    error_handler handler;
    asio::any_completion_executor work;  // tracks outstanding work while the handler waits
};

}  // namespace

struct broadcast_core::quiet_latch {
    explicit quiet_latch(asio::any_io_executor executor) : executor(std::move(executor)) {}
    quiet_latch(const quiet_latch&) = delete;
    quiet_latch& operator=(const quiet_latch&) = delete;
    ~quiet_latch() {
        for (auto& waiter : waiters) {
            std::move(waiter).complete(executor, error_code());
        }
    }

    const asio::any_io_executor executor;
    std::list<waiting_handler> waiters;  // a list: no element is ever assigned
};

broadcast_core::broadcast_core(asio::any_io_executor executor, std::unique_ptr<backend> backend,
                               std::string redacted_url)
    : executor_(std::move(executor)),
      strand_(asio::make_strand(executor_)),
      backend_(std::move(backend)),
      url_(std::move(redacted_url)),
      work_(std::make_shared<quiet_latch>(executor_)) {}

broadcast_core::~broadcast_core() = default;

void broadcast_core::attach() {
    backend_access::attach(*backend_, strand_, std::weak_ptr<backend_sink>(shared_from_this()));
}

subscriber broadcast_core::empty_subscriber() const {
    return subscriber(nullptr, {}, executor_);
}

// ---- connect / disconnect ----------------------------------------------------------

void broadcast_core::connect(error_handler handler) {
    connect_waiter waiter;
    waiter.id = next_connect_id_.fetch_add(1, relaxed) + 1;
    waiter.slot = asio::get_associated_cancellation_slot(handler);
    waiter.handler.swap(handler);  // not operator=: see move_only in completion.hpp
    if (waiter.slot.is_connected()) {
        waiter.slot.assign([weak = weak_from_this(), id = waiter.id](asio::cancellation_type type) {
            if (!cancellation_requested(type)) {
                return;
            }
            if (auto self = weak.lock()) {
                asio::dispatch(self->strand_, [self, id] { self->cancel_connect(id); });
            }
        });
    }
    asio::dispatch(strand_,
                   [once = move_only{}, self = shared_from_this(),
                    waiter = std::move(waiter)]() mutable { self->do_connect(std::move(waiter)); });
}

void broadcast_core::do_connect(connect_waiter waiter) {
    if (connected_) {
        finish_connect_waiter(std::move(waiter), {});
        return;
    }
    connect_waiters_.push_back(std::move(waiter));
    if (connecting_) {
        return;
    }
    connecting_ = true;
    set_state(connection_state::connecting, {});
    backend_->async_connect(asio::bind_executor(
        strand_, [weak = weak_from_this(), session = session_, work = work_](error_code ec) {
            const auto self = weak.lock();
            if (!self || session != self->session_) {
                return;  // a disconnect overtook this connect and answered its waiters
            }
            self->connecting_ = false;
            self->connected_ = !ec;
            self->set_state(ec ? connection_state::disconnected : connection_state::connected, ec);
            for (auto& waiter : std::exchange(self->connect_waiters_, {})) {
                self->finish_connect_waiter(std::move(waiter), ec);
            }
        }));
}

void broadcast_core::cancel_connect(std::uint64_t id) {
    const auto it = std::find_if(connect_waiters_.begin(), connect_waiters_.end(),
                                 [id](const connect_waiter& w) { return w.id == id; });
    if (it == connect_waiters_.end()) {
        return;  // already completed
    }
    auto waiter = std::move(*it);
    connect_waiters_.erase(it);  // a list: erasing assigns no handler (see completion.hpp)
    finish_connect_waiter(std::move(waiter), asio::error::operation_aborted);
    if (connect_waiters_.empty() && connecting_) {
        // Nobody waits for this attempt any more: abandon it (the backend closes what
        // it opened), so that a later connect starts afresh.
        do_disconnect({});
        set_state(connection_state::disconnected, {});
    }
}

void broadcast_core::finish_connect_waiter(connect_waiter waiter, error_code ec) {
    post_clearing(std::move(waiter.handler), waiter.slot, executor_, ec);
}

void broadcast_core::disconnect(error_handler handler) {
    asio::dispatch(strand_, [once = move_only{}, self = shared_from_this(),
                             handler = std::move(handler)]() mutable {
        self->do_disconnect(std::move(handler));
    });
}

void broadcast_core::do_disconnect(error_handler handler, error_code reason) {
    if (!connected_ && !connecting_) {
        if (handler) {
            post_completion(std::move(handler), executor_, error_code());
        }
        return;
    }
    ++session_;
    connected_ = connecting_ = false;
    for (auto& waiter : std::exchange(connect_waiters_, {})) {
        finish_connect_waiter(std::move(waiter), asio::error::operation_aborted);
    }
    // End every subscriber and fail every subscribe still waiting for the broker.
    for (const bool patterns : {false, true}) {
        auto entries = std::exchange(table(patterns), {});
        for (auto& [name, entry] : entries) {
            for (auto& state : entry.subscribers) {
                state->attached = false;
                state->close(error::end_of_stream);
            }
            for (auto& op : entry.waiters) {
                // The app disconnected: its own doing, as for a waiting connect.
                channel_confirmed(op, reason ? reason : asio::error::operation_aborted);
            }
        }
    }
    subscriber_count_ = 0;
    update_gauges();
    backend_->async_disconnect(asio::bind_executor(
        strand_, [once = move_only{}, weak = weak_from_this(), executor = executor_, work = work_,
                  waiter = waiting_handler(std::move(handler), executor_)](error_code ec) mutable {
            // A connect made since has its own state to report: a late disconnect
            // completion must not overwrite it. An abandoned connect reported it already.
            if (const auto self = weak.lock(); self && !self->connected_ && !self->connecting_ &&
                                               self->state() != connection_state::disconnected) {
                self->set_state(connection_state::disconnected, {});
            }
            std::move(waiter).complete(executor, ec);
        }));
}

void broadcast_core::async_shutdown(error_handler handler) {
    asio::dispatch(strand_, [once = move_only{}, self = shared_from_this(),
                             handler = std::move(handler)]() mutable {
        self->work_->waiters.emplace_back(std::move(handler), self->executor_);
        self->do_disconnect({});  // its completion handler holds the latch too
        // Work started from now on belongs to a later shutdown.
        self->work_ = std::make_shared<quiet_latch>(self->executor_);
    });
}

void broadcast_core::shutdown() {
    // The app may destroy what the observer uses right after the broadcast: calls
    // still queued must not run.
    observing_.store(false, std::memory_order_release);
    asio::dispatch(strand_, [self = shared_from_this()] { self->do_disconnect({}); });
}

// ---- publish -----------------------------------------------------------------------

void broadcast_core::publish(std::string channel, std::string message, error_handler handler) {
    // The backend gets a cancellation slot of its own, emitted on the strand where it
    // runs: the app's slot is emitted on the app's thread, which may not be the strand's.
    // Only a publish whose handler has a slot pays for this.
    auto slot = asio::get_associated_cancellation_slot(handler);
    std::shared_ptr<asio::cancellation_signal> relay;
    if (slot.is_connected()) {
        relay = std::make_shared<asio::cancellation_signal>();
        slot.assign([weak = weak_from_this(), weak_relay = std::weak_ptr<asio::cancellation_signal>(
                                                  relay)](asio::cancellation_type type) {
            if (auto self = weak.lock()) {
                asio::dispatch(self->strand_, [weak_relay, type] {
                    if (const auto relay = weak_relay.lock()) {
                        relay->emit(type);
                    }
                });
            }
        });
    }
    asio::dispatch(strand_, [once = move_only{}, self = shared_from_this(),
                             channel = std::move(channel), message = std::move(message), slot,
                             relay = std::move(relay), handler = std::move(handler)]() mutable {
        if (!self->connected_) {
            post_clearing(std::move(handler), slot, self->executor_,
                          error_code(error::not_connected));
            return;
        }
        // Complete straight on the app's executor: one hop instead of two via the strand.
        // A backend may cancel a publish that is still queued (see async_publish).
        auto executor = asio::get_associated_executor(handler, self->executor_);
        const auto backend_slot = relay ? relay->slot() : asio::cancellation_slot();
        self->backend_->async_publish(
            std::move(channel), std::move(message),
            asio::bind_cancellation_slot(
                backend_slot, asio::bind_executor(
                                  executor, [once = move_only{}, weak = self->weak_from_this(),
                                             work = self->work_, slot, relay = std::move(relay),
                                             handler = std::move(handler)](error_code ec) mutable {
                                      if (slot.is_connected()) {
                                          slot.clear();  // on the app's executor, where it emits
                                      }
                                      if (const auto self = weak.lock(); self && !ec) {
                                          self->published_.fetch_add(1, relaxed);
                                      }
                                      std::move(handler)(ec);
                                  })));
    });
}

// ---- subscribe ---------------------------------------------------------------------

void broadcast_core::subscribe(std::vector<std::string> channels, subscribe_options options,
                               subscribe_handler handler) {
    auto op = std::make_shared<pending_subscribe>();
    op->slot = asio::get_associated_cancellation_slot(handler);
    op->handler.swap(handler);  // not operator=: see move_only in completion.hpp
    if (op->slot.is_connected()) {
        op->slot.assign([weak = weak_from_this(), weak_op = std::weak_ptr<pending_subscribe>(op)](
                            asio::cancellation_type type) {
            if (!cancellation_requested(type)) {
                return;
            }
            auto self = weak.lock();
            auto op = weak_op.lock();
            if (self && op) {
                asio::dispatch(self->strand_, [self, op] { self->cancel_subscribe(op); });
            }
        });
    }
    asio::dispatch(strand_, [self = shared_from_this(), channels = std::move(channels), options,
                             op = std::move(op)]() mutable {
        self->do_subscribe(std::move(channels), options, op);
    });
}

void broadcast_core::subscribe_callback(std::vector<std::string> channels, event_callback on_event,
                                        subscribe_options options, subscription_handler handler) {
    auto executor = executor_;
    const auto handler_executor = asio::get_associated_executor(handler, executor_);
    const auto slot = asio::get_associated_cancellation_slot(handler);
    subscribe(std::move(channels), options,
              subscribe_handler(asio::bind_cancellation_slot(
                  slot, asio::bind_executor(
                            handler_executor,
                            [once = move_only{}, executor, on_event = std::move(on_event),
                             handler = std::move(handler)](error_code ec, subscriber sub) mutable {
                                if (!ec) {
                                    std::make_shared<callback_pump>(sub.state_, sub.core_,
                                                                    std::move(on_event), executor)
                                        ->start();
                                }
                                std::move(handler)(ec, subscription(std::move(sub)));
                            }))));
}

void broadcast_core::do_subscribe(std::vector<std::string> channels, subscribe_options options,
                                  const std::shared_ptr<pending_subscribe>& op) {
    if (op->done) {
        return;  // cancelled before it started
    }
    if (!connected_) {
        finish_subscribe(op, error::not_connected, empty_subscriber());
        return;
    }
    if (channels.empty()) {
        finish_subscribe(op, error::invalid_channel, empty_subscriber());
        return;
    }
    op->state = std::make_shared<subscriber_state>(std::move(channels), options, executor_);
    if (const auto ec = prepare_history(*op, options)) {
        finish_subscribe(op, ec, empty_subscriber());
        return;
    }
    op->remaining = op->state->channels().size();
    op->state->attached = true;
    ++subscriber_count_;

    const bool patterns = op->state->patterns();
    for (const auto& name : op->state->channels()) {
        auto [it, created] = table(patterns).try_emplace(name);
        auto& entry = it->second;
        if (created) {
            entry.generation = ++next_generation_;
        }
        // Events may flow before the confirmation: they are for this subscriber too.
        entry.subscribers.push_back(op->state);
        if (entry.confirmed) {
            channel_confirmed(op, {});
        } else {
            entry.waiters.push_back(op);
            reconcile(name, patterns);
        }
    }
    update_gauges();
}

void broadcast_core::channel_confirmed(const std::shared_ptr<pending_subscribe>& op,
                                       error_code ec) {
    if (op->done) {
        return;
    }
    if (ec && !op->first_error) {
        op->first_error = ec;
    }
    if (--op->remaining > 0) {
        return;
    }
    if (op->first_error) {
        detach(op->state);
        finish_subscribe(op, op->first_error, empty_subscriber());
        return;
    }
    if (op->history) {
        fetch_history(op);
        return;
    }
    finish_subscribe(op, {}, subscriber(op->state, weak_from_this(), executor_));
}

void broadcast_core::cancel_subscribe(const std::shared_ptr<pending_subscribe>& op) {
    if (op->done) {
        return;  // completed meanwhile
    }
    if (op->state) {
        // Stop waiting for its channels, then leave them as any subscriber leaves: a
        // channel left without subscribers drops its broker subscription (at once, or
        // once the subscribe in flight for it has been answered).
        auto& entries = table(op->state->patterns());
        for (const auto& name : op->state->channels()) {
            if (const auto it = entries.find(name); it != entries.end()) {
                auto& waiters = it->second.waiters;
                waiters.erase(std::remove(waiters.begin(), waiters.end(), op), waiters.end());
            }
        }
        detach(op->state);
    }
    finish_subscribe(op, asio::error::operation_aborted, empty_subscriber());
}

void broadcast_core::finish_subscribe(const std::shared_ptr<pending_subscribe>& op, error_code ec,
                                      subscriber sub) {
    op->done = true;
    post_clearing(std::move(op->handler), op->slot, executor_, ec, std::move(sub));
}

void broadcast_core::reconcile(const std::string& name, bool patterns) {
    auto& entries = table(patterns);
    const auto it = entries.find(name);
    if (it == entries.end() || it->second.busy) {
        return;
    }
    auto& entry = it->second;
    const bool wanted = !entry.subscribers.empty();
    if (wanted && !entry.confirmed) {
        entry.busy = true;
        auto done =
            asio::bind_executor(strand_, [weak = weak_from_this(), name, patterns, work = work_,
                                          generation = entry.generation](error_code ec) {
                if (const auto self = weak.lock()) {
                    self->backend_subscribed(name, patterns, generation, ec);
                }
            });
        if (patterns) {
            backend_->async_subscribe_pattern(name, std::move(done));
        } else {
            backend_->async_subscribe(name, std::move(done));
        }
    } else if (!wanted && entry.confirmed) {
        entry.busy = true;
        entry.confirmed = false;  // going away: a new subscriber must wait (see channel_entry)
        // A failed unsubscribe leaves at worst a broker subscription whose events no
        // local subscriber wants; they are ignored.
        auto done =
            asio::bind_executor(strand_, [weak = weak_from_this(), name, patterns, work = work_,
                                          generation = entry.generation](error_code) {
                if (const auto self = weak.lock()) {
                    self->backend_unsubscribed(name, patterns, generation);
                }
            });
        if (patterns) {
            backend_->async_unsubscribe_pattern(name, std::move(done));
        } else {
            backend_->async_unsubscribe(name, std::move(done));
        }
    } else if (!wanted) {
        entries.erase(it);
        update_gauges();
    }
}

void broadcast_core::backend_subscribed(const std::string& name, bool patterns,
                                        std::uint64_t generation, error_code ec) {
    auto& entries = table(patterns);
    const auto it = entries.find(name);
    if (it == entries.end() || it->second.generation != generation) {
        return;  // dropped by a disconnect meanwhile
    }
    auto& entry = it->second;
    entry.busy = false;
    entry.confirmed = !ec;
    auto waiters = std::exchange(entry.waiters, {});
    if (ec) {
        // Every subscriber of an unconfirmed channel waits for this answer: fail them
        // all. Never retry on its own (a refused channel would be asked again and
        // again): a later subscribe asks the broker again.
        entry.subscribers.clear();
        reconcile(name, patterns);  // erases the entry
    }
    // Waiters may detach subscribers and so erase the entry: reconcile looks it up again.
    for (auto& op : waiters) {
        channel_confirmed(op, ec);
    }
    reconcile(name, patterns);
    update_gauges();
}

void broadcast_core::backend_unsubscribed(const std::string& name, bool patterns,
                                          std::uint64_t generation) {
    auto& entries = table(patterns);
    const auto it = entries.find(name);
    if (it == entries.end() || it->second.generation != generation) {
        return;
    }
    it->second.busy = false;
    reconcile(name, patterns);
}

// ---- unsubscribe -------------------------------------------------------------------

void broadcast_core::release(const std::shared_ptr<subscriber_state>& state) {
    state->abort();
    asio::dispatch(strand_, [self = shared_from_this(), state] { self->detach(state); });
}

void broadcast_core::fail(const std::shared_ptr<subscriber_state>& state, error_code reason) {
    state->end_now(reason);
    asio::dispatch(strand_, [self = shared_from_this(), state] { self->detach(state); });
}

void broadcast_core::detach(const std::shared_ptr<subscriber_state>& state) {
    auto& entries = table(state->patterns());
    for (const auto& name : state->channels()) {
        const auto it = entries.find(name);
        if (it == entries.end()) {
            continue;
        }
        auto& subscribers = it->second.subscribers;
        const auto pos = std::find(subscribers.begin(), subscribers.end(), state);
        if (pos == subscribers.end()) {
            continue;
        }
        it->second.catching_up.erase(state.get());
        // Order among subscribers does not matter: swap-and-pop.
        *pos = std::move(subscribers.back());
        subscribers.pop_back();
        if (subscribers.empty()) {
            reconcile(name, state->patterns());
        }
    }
    if (state->attached) {
        state->attached = false;
        --subscriber_count_;
    }
    update_gauges();
}

// ---- fan-out -----------------------------------------------------------------------

void broadcast_core::deliver(event ev) {
    bump(received_);
    const auto it = channels_.find(ev.channel());
    if (it != channels_.end()) {
        fan_out(it->second, ev);
    }
}

void broadcast_core::deliver_matched(std::string_view pattern, event ev) {
    bump(received_);
    const auto it = patterns_.find(pattern);
    if (it != patterns_.end()) {
        fan_out(it->second, ev);
    }
}

void broadcast_core::fan_out(channel_entry& entry, const event& ev) {
    std::uint64_t delivered = 0;
    std::uint64_t dropped = 0;
    std::vector<std::shared_ptr<subscriber_state>> overflowed;
    for (const auto& state : entry.subscribers) {
        if (!entry.catching_up.empty() && hold_for_history(entry, *state, ev)) {
            continue;
        }
        switch (state->push(ev)) {
            case subscriber_state::push_result::queued:
                ++delivered;
                break;
            case subscriber_state::push_result::queued_dropping_oldest:
                ++delivered;
                ++dropped;
                break;
            case subscriber_state::push_result::dropped:
                ++dropped;
                break;
            case subscriber_state::push_result::overflowed:
                ++dropped;
                overflowed.push_back(state);
                break;
            case subscriber_state::push_result::closed:
                break;
        }
    }
    bump(delivered_, delivered);
    if (dropped > 0) {
        bump(dropped_, dropped);
    }
    for (const auto& state : overflowed) {
        detach(state);
    }
}

// ---- history (see history_seam.hpp and docs/history.md) ----------------------------

error_code broadcast_core::prepare_history(pending_subscribe& op,
                                           const subscribe_options& options) {
    if (!options.since && options.last == 0) {
        return {};
    }
    // `since` is a position in one channel: it cannot stand for several (nor for a
    // pattern's channels).
    if ((options.since && op.state->channels().size() != 1) || options.pattern) {
        return boost::system::errc::make_error_code(boost::system::errc::invalid_argument);
    }
    op.history.emplace();
    op.history->after = options.since;
    op.history->limit = options.last;
    if (options.since && options.last != 0) {
        // The most recent last + 1 after the position: one too many tells a gap.
        op.since_at_most = options.last;
        op.history->limit = options.last + 1;
    }
    const auto* backend = backend_.get();
    for (const auto& name : op.state->channels()) {
        // Held from the start: live events may arrive before the confirmation.
        auto [it, created] = channels_.try_emplace(name);
        if (created) {
            it->second.generation = ++next_generation_;
        }
        it->second.catching_up.try_emplace(
            op.state.get(), options.since, std::max<std::size_t>(options.capacity, 1),
            options.policy, [backend](std::string_view a, std::string_view b) {
                return backend->position_before(a, b);
            });
    }
    return {};
}

bool broadcast_core::hold_for_history(channel_entry& entry, const subscriber_state& state,
                                      const event& ev) {
    const auto it = entry.catching_up.find(&state);
    if (it == entry.catching_up.end()) {
        return false;
    }
    if (!it->second.joined()) {
        it->second.hold(ev);
        return true;
    }
    if (!it->second.admit(ev)) {
        return true;  // delivered already, from the history
    }
    entry.catching_up.erase(it);  // caught up: live from now on
    return false;
}

void broadcast_core::fetch_history(const std::shared_ptr<pending_subscribe>& op) {
    op->remaining = op->state->channels().size();
    for (const auto& name : op->state->channels()) {
        backend_->async_history(
            name, *op->history,
            asio::bind_executor(strand_, [weak = weak_from_this(), op, name, session = session_,
                                          work = work_](error_code ec, std::vector<event> events) {
                if (const auto self = weak.lock()) {
                    self->history_fetched(op, name, session, ec, std::move(events));
                }
            }));
    }
}

void broadcast_core::history_fetched(const std::shared_ptr<pending_subscribe>& op,
                                     const std::string& name, std::uint64_t session, error_code ec,
                                     std::vector<event> events) {
    if (op->done) {
        return;  // cancelled while its history was fetched: it has completed already
    }
    if (session != session_) {
        ec = error::not_connected;  // a disconnect ended the subscriber meanwhile
    }
    if (!ec && op->since_at_most != 0 && events.size() > op->since_at_most) {
        ec = error::history_gap;  // more after `since` than the subscriber takes
    }
    history_seam* seam = nullptr;
    const auto it = channels_.find(name);
    if (it != channels_.end()) {
        if (const auto found = it->second.catching_up.find(op->state.get());
            found != it->second.catching_up.end()) {
            seam = &found->second;
        }
    }
    if (!ec && seam) {
        auto joined = seam->join(std::move(events));
        const auto held_dropped = seam->dropped();
        const bool overflowed = seam->overflowed();
        if (overflowed || seam->done_at_join()) {
            it->second.catching_up.erase(op->state.get());  // live from now on
        }  // else it stays, to drop live duplicates of the history (see history_seam)
        if (held_dropped > 0) {
            op->state->count_dropped(held_dropped);
            bump(dropped_, held_dropped);
        }
        for (const auto& ev : joined) {
            if (!push_counted(op->state, ev)) {
                break;
            }
        }
        if (overflowed) {
            op->state->close(error::subscriber_overflow);
            detach(op->state);
        }
    } else if (ec && !op->first_error) {
        op->first_error = ec;
    }
    if (--op->remaining > 0) {
        return;
    }
    if (op->first_error) {
        detach(op->state);
        finish_subscribe(op, op->first_error, empty_subscriber());
        return;
    }
    finish_subscribe(op, {}, subscriber(op->state, weak_from_this(), executor_));
}

bool broadcast_core::push_counted(const std::shared_ptr<subscriber_state>& state, const event& ev) {
    switch (state->push(ev)) {
        case subscriber_state::push_result::queued:
            bump(delivered_);
            return true;
        case subscriber_state::push_result::queued_dropping_oldest:
            bump(delivered_);
            bump(dropped_);
            return true;
        case subscriber_state::push_result::dropped:
            bump(dropped_);
            return true;
        case subscriber_state::push_result::overflowed:
            bump(dropped_);
            detach(state);
            return false;
        case subscriber_state::push_result::closed:
            return false;
    }
    return false;
}

void broadcast_core::history_gap(std::string_view channel) {
    end_subscribers(channel, error::history_gap);
}

void broadcast_core::subscription_refused(std::string_view channel) {
    end_subscribers(channel, error::subscription_refused);
}

void broadcast_core::subscription_refused(std::string_view channel, std::string_view reason) {
    end_subscribers(channel, error::subscription_refused, reason);
}

void broadcast_core::connection_failed(error_code ec) {
    // Posted: disconnecting calls into the backend, which is still in its own call.
    asio::post(strand_, [self = shared_from_this(), session = session_, ec] {
        if (!self->connected_ || session != self->session_) {
            return;  // the app disconnected meanwhile, or connected again
        }
        self->do_disconnect({}, ec);
        self->set_state(connection_state::disconnected, ec);
    });
}

void broadcast_core::pattern_gap(std::string_view pattern) {
    end_subscribers(patterns_, pattern, error::history_gap);
}

void broadcast_core::end_subscribers(std::string_view channel, broadcaster::error ec,
                                     std::string_view detail) {
    end_subscribers(channels_, channel, ec, detail);
}

void broadcast_core::end_subscribers(channel_table& table, std::string_view name,
                                     broadcaster::error ec, std::string_view detail) {
    const auto it = table.find(name);
    if (it == table.end()) {
        return;
    }
    // Never skipped silently: each subscriber gets what it has, then the error.
    const auto subscribers = it->second.subscribers;
    for (const auto& state : subscribers) {
        state->close(ec, std::string(detail));
        detach(state);
    }
}

void broadcast_core::history(std::string channel, std::size_t limit, history_handler handler) {
    asio::dispatch(
        strand_, [once = move_only{}, self = shared_from_this(), channel = std::move(channel),
                  limit, handler = std::move(handler)]() mutable {
            if (!self->connected_) {
                post_completion(std::move(handler), self->executor_,
                                error_code(error::not_connected), std::vector<event>());
                return;
            }
            // Completes on the app's executor, not on the strand the backend runs on.
            auto executor = asio::get_associated_executor(handler, self->executor_);
            self->backend_->async_history(std::move(channel), history_query{std::nullopt, limit},
                                          asio::bind_executor(executor, std::move(handler)));
        });
}

// ---- state and stats ---------------------------------------------------------------

void broadcast_core::state_changed(connection_state state, error_code ec) {
    if (state == connection_state::connected &&
        last_backend_state_ == connection_state::reconnecting) {
        bump(reconnects_);
    }
    last_backend_state_ = state;
    set_state(state, ec);
}

void broadcast_core::set_state(connection_state state, error_code ec) {
    state_.store(state, relaxed);
    if (observer_) {
        // Posted from the strand in order, run by another strand: one at a time, in order.
        asio::post(observer_strand_, [self = shared_from_this(), observer = observer_, state, ec] {
            if (self->observing_.load(std::memory_order_acquire)) {
                observer(state, ec);
            }
        });
    }
}

void broadcast_core::set_observer(state_observer observer) {
    asio::dispatch(strand_, [self = shared_from_this(), observer = std::move(observer)]() mutable {
        self->observer_ = std::move(observer);
    });
}

void broadcast_core::update_gauges() noexcept {
    active_channels_.store(channels_.size() + patterns_.size(), relaxed);
    active_subscribers_.store(subscriber_count_, relaxed);
}

broadcast_stats broadcast_core::stats() const noexcept {
    broadcast_stats s;
    s.published = published_.load(relaxed);
    s.received = received_.load(relaxed);
    s.delivered = delivered_.load(relaxed);
    s.dropped = dropped_.load(relaxed);
    s.active_channels = active_channels_.load(relaxed);
    s.active_subscribers = active_subscribers_.load(relaxed);
    s.reconnects = reconnects_.load(relaxed);
    return s;
}

}  // namespace broadcaster::detail
