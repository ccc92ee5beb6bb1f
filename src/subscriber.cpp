#include "broadcast_core.hpp"
#include "completion.hpp"
#include "subscriber_state.hpp"

#include <broadcaster/error.hpp>
#include <broadcaster/subscriber.hpp>

#include <boost/asio/system_executor.hpp>

namespace broadcaster {

namespace detail {
void async_receive(const std::shared_ptr<subscriber_state>& state,
                   const boost::asio::any_io_executor& fallback, receive_executor executor,
                   receive_handler handler) {
    if (!state) {
        // An empty handle has nothing to receive: it has ended. It completes on the
        // handler's own executor, else the broadcast's; only a default-constructed
        // handle knows none.
        const boost::asio::any_io_executor where =
            executor.own
                ? executor.own
                : (fallback ? fallback
                            : boost::asio::any_io_executor(boost::asio::system_executor()));
        post_completion(std::move(handler), where, boost::system::error_code(error::end_of_stream),
                        event());
        return;
    }
    state->async_receive(std::move(handler), std::move(executor));
}
}  // namespace detail

subscriber::subscriber(subscriber&& other) noexcept
    : state_(std::move(other.state_)), core_(std::move(other.core_)), executor_(other.executor_) {}

subscriber& subscriber::operator=(subscriber&& other) noexcept {
    if (this != &other) {
        unsubscribe();
        state_ = std::move(other.state_);
        core_ = std::move(other.core_);
        executor_ = other.executor_;
    }
    return *this;
}

subscriber::~subscriber() {
    unsubscribe();
}

void subscriber::unsubscribe() noexcept {
    // The handle keeps its state (concurrent calls read it); the state makes this run once.
    if (!state_ || !state_->mark_released()) {
        return;
    }
    if (auto core = core_.lock()) {
        core->release(state_);
    } else {
        state_->abort();
    }
}

std::optional<event> subscriber::try_receive() {
    return state_ ? state_->try_receive() : std::nullopt;
}

std::size_t subscriber::try_receive_some(std::vector<event>& out, std::size_t max) {
    return state_ ? state_->try_receive_some(out, max) : 0;
}

std::optional<event> subscriber::receive_for(std::chrono::milliseconds timeout) {
    return state_ ? state_->receive_for(timeout) : std::nullopt;
}

bool subscriber::is_open() const noexcept {
    return state_ && state_->is_open();
}

boost::system::error_code subscriber::error() const {
    return state_ ? state_->error() : boost::system::error_code(broadcaster::error::end_of_stream);
}

std::string subscriber::error_message() const {
    return state_ ? state_->error_message() : error().message();
}

const std::vector<std::string>& subscriber::channels() const noexcept {
    static const std::vector<std::string> none;
    return state_ ? state_->channels() : none;
}

std::uint64_t subscriber::dropped() const noexcept {
    return state_ ? state_->dropped() : 0;
}

std::size_t subscriber::queued() const noexcept {
    return state_ ? state_->queued() : 0;
}

}  // namespace broadcaster
