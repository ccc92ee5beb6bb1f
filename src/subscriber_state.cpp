#include "subscriber_state.hpp"

#include "completion.hpp"
#include "completion_blocks.hpp"

#include <broadcaster/error.hpp>

#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/execution/context_as.hpp>
#include <boost/asio/execution/outstanding_work.hpp>
#include <boost/asio/execution_context.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/prefer.hpp>
#include <boost/asio/query.hpp>

#include <algorithm>

namespace broadcaster::detail {

namespace asio = boost::asio;
using boost::system::error_code;

subscriber_state::subscriber_state(std::vector<std::string> channels, subscribe_options options,
                                   asio::any_io_executor default_executor)
    : channels_(std::move(channels)),
      capacity_(std::max<std::size_t>(options.capacity, 1)),
      max_bytes_(options.max_bytes),
      policy_(options.policy),
      default_executor_(std::move(default_executor)),
      patterns_(options.pattern) {}

subscriber_state::~subscriber_state() {
    if (registry_) {
        registry_->remove(this);
    }
}

void subscriber_state::drop_pending() {
    std::unique_lock lock(mutex_);
    auto receive = take_pending();
    lock.unlock();
    // `receive` is destroyed here, after unlocking: its handler may own this state's
    // handle, whose release locks the mutex again.
}

subscriber_state::push_result subscriber_state::push(const event& ev) {
    std::unique_lock lock(mutex_);
    if (closed_) {
        return push_result::closed;
    }
    if (pending_) {
        // A receive is waiting, so the queue is empty: hand the event over directly.
        auto receive = take_pending();
        lock.unlock();
        complete(std::move(receive), {}, ev);
        return push_result::queued;
    }
    const auto size = ev.message().size();
    const auto full = [&] {
        return queue_.size() >= capacity_ || (max_bytes_ != 0 && queued_bytes_ + size > max_bytes_);
    };
    // An event that could never fit evicts nothing for it; it is dropped, or, under
    // the close policy, ends the subscriber like any overflow (never a silent loss).
    const bool never_fits = max_bytes_ != 0 && size > max_bytes_;
    if (never_fits && policy_ != overflow_policy::close) {
        ++dropped_;
        return push_result::dropped;
    }
    auto result = push_result::queued;
    if (never_fits || full()) {
        switch (policy_) {
            case overflow_policy::drop_oldest:
                while (full()) {
                    pop_front_locked();
                    ++dropped_;
                    result = push_result::queued_dropping_oldest;
                }
                break;
            case overflow_policy::drop_newest:
                ++dropped_;
                return push_result::dropped;
            case overflow_policy::close:
                ++dropped_;
                closed_ = true;
                close_reason_ = error::subscriber_overflow;
                wake_blocking_receives();
                return push_result::overflowed;
        }
    }
    queue_.push_back(ev);
    queued_bytes_ += size;
    queued_count_.store(queue_.size(), std::memory_order_relaxed);
    if (blocking_waiters_ > 0) {
        blocking_ready_->notify_one();
    }
    return result;
}

void subscriber_state::count_dropped(std::uint64_t n) {
    std::lock_guard lock(mutex_);
    dropped_ += n;
}

void subscriber_state::close(error_code reason, std::string detail) {
    std::unique_lock lock(mutex_);
    if (closed_) {
        return;
    }
    closed_ = true;
    close_reason_ = reason;
    close_detail_ = std::move(detail);
    wake_blocking_receives();
    if (pending_) {
        auto receive = take_pending();
        lock.unlock();
        complete(std::move(receive), reason, {});
    }
}

void subscriber_state::abort() {
    end(asio::error::operation_aborted, false);
}

void subscriber_state::end_now(error_code reason) {
    end(reason, true);
}

void subscriber_state::end(error_code reason, bool replace) {
    std::unique_lock lock(mutex_);
    if (!closed_ || replace) {
        closed_ = true;
        close_reason_ = reason;
        close_detail_.clear();
    }
    queue_.clear();
    queued_bytes_ = 0;
    queued_count_.store(0, std::memory_order_relaxed);
    wake_blocking_receives();
    if (pending_) {
        auto receive = take_pending();
        lock.unlock();
        complete(std::move(receive), reason, {});
    }
}

void subscriber_state::async_receive(receive_handler handler, receive_executor executor) {
    auto handler_executor = executor.none ? default_executor_ : std::move(executor.own);
    std::unique_lock lock(mutex_);
    if (pending_) {
        lock.unlock();
        complete(immediate(std::move(handler), std::move(handler_executor)),
                 error::receive_in_progress, {});
        return;
    }
    if (!queue_.empty()) {
        auto ev = pop_front_locked();
        queue_.shrink_if_idle();
        lock.unlock();
        complete(immediate(std::move(handler), std::move(handler_executor)), {}, std::move(ev));
        return;
    }
    if (closed_) {
        const auto reason = close_reason_;
        lock.unlock();
        complete(immediate(std::move(handler), std::move(handler_executor)), reason, {});
        return;
    }
    if (!known_to_context()) {
        lock.unlock();
        return;  // the io_context is being destroyed: `handler` goes with it, uncalled
    }
    // Keep the handler's executor busy while we wait, as Asio's own operations do.
    if (const auto* io_context = handler_executor.target<asio::io_context::executor_type>()) {
        pending_work_ = asio::prefer(*io_context, asio::execution::outstanding_work.tracked);
    } else if (handler_executor) {
        pending_work_ =
            asio::prefer(std::move(handler_executor), asio::execution::outstanding_work.tracked);
    } else {
        pending_work_ = asio::prefer(asio::get_associated_executor(handler, default_executor_),
                                     asio::execution::outstanding_work.tracked);
    }
    pending_slot_ = asio::get_associated_cancellation_slot(handler);
    pending_.swap(handler);  // not operator=: see move_only in completion.hpp
    const auto id = ++pending_id_;
    if (pending_slot_.is_connected()) {
        pending_slot_.assign([weak = weak_from_this(), id](asio::cancellation_type) {
            if (auto self = weak.lock()) {
                self->cancel_receive(id);
            }
        });
    }
}

void subscriber_state::cancel_receive(std::uint64_t receive_id) {
    std::unique_lock lock(mutex_);
    if (!pending_ || pending_id_ != receive_id) {
        return;
    }
    auto receive = take_pending();
    lock.unlock();
    complete(std::move(receive), asio::error::operation_aborted, {});
}

bool subscriber_state::known_to_context() {
    if (!registry_) {
        if (!default_executor_) {
            return true;  // no context to be destroyed with
        }
        auto& context =
            asio::query(default_executor_, asio::execution::context_as<asio::execution_context&>);
        registry_ = asio::use_service<pending_receives>(context).registry();
        return registry_->add(this, weak_from_this());
    }
    return !registry_->shut_down();
}

subscriber_state::taken_receive subscriber_state::take_pending() {
    return {std::move(pending_), std::exchange(pending_slot_, {}),
            std::exchange(pending_work_, {})};
}

subscriber_state::taken_receive subscriber_state::immediate(receive_handler handler,
                                                            asio::any_io_executor executor) {
    if (const auto* io_context = executor.target<asio::io_context::executor_type>()) {
        return {std::move(handler),
                {},
                asio::prefer(*io_context, asio::execution::outstanding_work.tracked)};
    }
    if (executor) {
        return {std::move(handler), {}, std::move(executor)};
    }
    return {std::move(handler), {}, {}};
}

// Runs a receive's handler, on the handler's executor: the slot is cleared there,
// where the app emits cancellation.
struct subscriber_state::run_receive {
    move_only once;  // see completion.hpp
    taken_receive receive;
    error_code ec;
    event ev;

    void operator()() {
        if (receive.slot.is_connected()) {
            receive.slot.clear();
        }
        std::move(receive.handler)(ec, std::move(ev));
    }
};

namespace {
// The same on an io_context's executor, which it keeps counting work until the handler
// has run; only what that needs, since it is moved several times on its way. Its
// memory comes from the completion cache (its own allocator type, not bind_allocator:
// with a binder, Asio would wrap it in a work_dispatcher).
struct run_io_context_receive {
    using allocator_type = completion_allocator<void>;
    allocator_type get_allocator() const noexcept { return {}; }

    move_only once;
    receive_handler handler;
    asio::cancellation_slot slot;
    subscriber_state::tracked_io_context work;
    error_code ec;
    event ev;

    void operator()() {
        if (slot.is_connected()) {
            slot.clear();
        }
        std::move(handler)(ec, std::move(ev));
    }
};
}  // namespace

void subscriber_state::complete(taken_receive&& receive, error_code ec, event ev) {
    // The handler's own io_context, when that is where it runs: posted straight to it,
    // in a block of the thread's completion cache, by an untracked copy of the executor
    // (copying a tracked one counts work atomically, twice per copy).
    if (auto* io_context = std::get_if<tracked_io_context>(&receive.work)) {
        const auto executor =
            asio::prefer(*io_context, asio::execution::outstanding_work.untracked);
        asio::post(executor, run_io_context_receive{{},
                                                    std::move(receive.handler),
                                                    receive.slot,
                                                    std::move(*io_context),
                                                    ec,
                                                    std::move(ev)});
        return;
    }
    // Another I/O executor (a strand): through the type-erased executor.
    if (const auto* io_work = std::get_if<asio::any_io_executor>(&receive.work)) {
        const auto executor = asio::prefer(*io_work, asio::execution::outstanding_work.untracked);
        asio::post(executor, run_receive{{}, std::move(receive), ec, std::move(ev)});
        return;
    }
    const auto* work = std::get_if<asio::any_completion_executor>(&receive.work);
    const auto executor =
        work ? *work : asio::get_associated_executor(receive.handler, default_executor_);
    post_via(executor, default_executor_, run_receive{{}, std::move(receive), ec, std::move(ev)});
}

void subscriber_state::wake_blocking_receives() {
    if (blocking_waiters_ > 0) {
        blocking_ready_->notify_all();
    }
}

event subscriber_state::pop_front_locked() noexcept {
    auto ev = queue_.pop_front();
    queued_bytes_ -= ev.message().size();
    queued_count_.store(queue_.size(), std::memory_order_relaxed);
    return ev;
}

std::optional<event> subscriber_state::try_receive() {
    if (queued() == 0) {
        return std::nullopt;  // without the lock: a writer draining a batch asks often
    }
    std::lock_guard lock(mutex_);
    if (queue_.empty()) {
        return std::nullopt;
    }
    auto ev = pop_front_locked();
    queue_.shrink_if_idle();
    return ev;
}

std::size_t subscriber_state::try_receive_some(std::vector<event>& out, std::size_t max) {
    std::lock_guard lock(mutex_);
    const auto n = std::min(max, queue_.size());
    for (std::size_t i = 0; i < n; ++i) {
        out.push_back(pop_front_locked());
    }
    queue_.shrink_if_idle();
    return n;
}

std::optional<event> subscriber_state::receive_for(std::chrono::milliseconds timeout) {
    std::unique_lock lock(mutex_);
    if (!blocking_ready_) {
        blocking_ready_ = std::make_unique<std::condition_variable>();
    }
    ++blocking_waiters_;
    blocking_ready_->wait_for(lock, timeout, [&] { return !queue_.empty() || closed_; });
    --blocking_waiters_;
    if (queue_.empty()) {
        return std::nullopt;
    }
    auto ev = pop_front_locked();
    queue_.shrink_if_idle();
    return ev;
}

bool subscriber_state::is_open() const {
    std::lock_guard lock(mutex_);
    return !closed_ || !queue_.empty();
}

error_code subscriber_state::error() const {
    std::lock_guard lock(mutex_);
    return closed_ && queue_.empty() ? close_reason_ : error_code();
}

std::string subscriber_state::error_message() const {
    std::lock_guard lock(mutex_);
    if (!closed_ || !queue_.empty()) {
        return {};
    }
    return close_detail_.empty() ? close_reason_.message()
                                 : close_reason_.message() + ": " + close_detail_;
}

std::uint64_t subscriber_state::dropped() const {
    std::lock_guard lock(mutex_);
    return dropped_;
}

std::size_t subscriber_state::queued() const {
    return queued_count_.load(std::memory_order_relaxed);
}

}  // namespace broadcaster::detail
