#pragma once

#include "test_support.hpp"

#include <nats/nats.h>

#include <future>
#include <string>

namespace broadcaster::test {

// Holds nats.c's callback thread (one for the process: it runs every connection's
// disconnected, reconnected, closed and error callbacks) in a closed callback until
// released: the connection events nats.c reports meanwhile wait behind it, as when the
// process is starved of CPU.
class stalled_callback_thread {
  public:
    explicit stalled_callback_thread(const std::string& url) {
        natsOptions* opts = nullptr;
        BROADCASTER_REQUIRE(natsOptions_Create(&opts) == NATS_OK);
        natsOptions_SetURL(opts, url.c_str());
        natsOptions_SetClosedCB(opts, on_closed, this);
        BROADCASTER_REQUIRE(natsConnection_Connect(&nc_, opts) == NATS_OK);
        natsOptions_Destroy(opts);
        natsConnection_Close(nc_);
        entered_.get_future().wait();
    }
    ~stalled_callback_thread() {
        release();
        natsConnection_Destroy(nc_);
    }
    void release() {
        if (!released_) {
            released_ = true;
            release_.set_value();
        }
    }

  private:
    static void on_closed(natsConnection*, void* self) {
        // A copy: once released, the object may be destroyed while this still waits.
        auto release = static_cast<stalled_callback_thread*>(self)->release_future_;
        static_cast<stalled_callback_thread*>(self)->entered_.set_value();
        release.wait();
    }
    natsConnection* nc_ = nullptr;
    std::promise<void> entered_;
    std::promise<void> release_;
    std::shared_future<void> release_future_ = release_.get_future().share();
    bool released_ = false;
};

}  // namespace broadcaster::test
