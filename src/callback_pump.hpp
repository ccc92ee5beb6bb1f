#pragma once

#include "subscriber_state.hpp"

#include <broadcaster/broadcast.hpp>

namespace broadcaster::detail {

// Drives a callback subscription: receives from the subscriber's queue and calls the
// app's function for each event, one at a time, on the broadcast's executor. Queued
// events are drained in batches so a burst costs one wake-up, not one per event.
// A callback that throws ends the subscription with error::callback_failed (the app
// sees it in subscription::error()); the exception goes no further, so it never ends
// the thread running the executor.
class callback_pump : public std::enable_shared_from_this<callback_pump> {
  public:
    callback_pump(std::shared_ptr<subscriber_state> state, std::weak_ptr<broadcast_core> core,
                  event_callback on_event, boost::asio::any_io_executor executor);

    // Starts receiving; the pump keeps itself alive until the subscriber ends.
    void start();

  private:
    void on_receive(boost::system::error_code ec, event ev);
    // Runs the callback; false (and the subscription ended) if it threw.
    bool call(const event& ev);
    bool stopped() const;

    const std::shared_ptr<subscriber_state> state_;
    const std::weak_ptr<broadcast_core> core_;
    const event_callback on_event_;
    const boost::asio::any_io_executor executor_;
    std::vector<event> batch_;
};

}  // namespace broadcaster::detail
