#include "callback_pump.hpp"

#include "broadcast_core.hpp"

#include <broadcaster/error.hpp>

#include <boost/asio/bind_executor.hpp>
#include <boost/asio/error.hpp>

namespace broadcaster::detail {

namespace asio = boost::asio;

namespace {
// Events handled per wake-up before yielding to other work on the executor.
constexpr std::size_t batch_limit = 64;
}  // namespace

callback_pump::callback_pump(std::shared_ptr<subscriber_state> state,
                             std::weak_ptr<broadcast_core> core, event_callback on_event,
                             asio::any_io_executor executor)
    : state_(std::move(state)),
      core_(std::move(core)),
      on_event_(std::move(on_event)),
      executor_(std::move(executor)) {}

void callback_pump::start() {
    state_->async_receive(receive_handler(asio::bind_executor(
                              executor_,
                              [self = shared_from_this()](boost::system::error_code ec, event ev) {
                                  self->on_receive(ec, std::move(ev));
                              })),
                          receive_executor{executor_, false});
}

void callback_pump::on_receive(boost::system::error_code ec, event ev) {
    if (ec || stopped()) {
        return;  // the subscription ended; subscription::error() tells why
    }
    if (!call(ev)) {
        return;
    }
    batch_.clear();
    state_->try_receive_some(batch_, batch_limit - 1);
    for (const auto& queued : batch_) {
        if (stopped() || !call(queued)) {
            batch_.clear();
            return;
        }
    }
    batch_.clear();
    start();
}

bool callback_pump::call(const event& ev) {
    try {
        on_event_(ev);
        return true;
    } catch (...) {
        // Ending the subscription visibly is the app's signal; rethrowing would stop
        // whichever thread runs the executor (the blocking facade's I/O thread).
        if (auto core = core_.lock()) {
            core->fail(state_, error::callback_failed);
        } else {
            state_->end_now(error::callback_failed);
        }
        return false;
    }
}

bool callback_pump::stopped() const {
    return state_->error() == asio::error::operation_aborted;
}

}  // namespace broadcaster::detail
