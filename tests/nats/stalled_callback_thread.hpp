#pragma once

#include "held_nats_thread.hpp"
#include "test_support.hpp"

#include <nats/nats.h>

#include <string>

namespace broadcaster::test {

// Holds nats.c's callback thread (one for the process: it runs every connection's
// disconnected, reconnected, closed and error callbacks) in a closed callback until
// released: the connection events nats.c reports meanwhile wait behind it, as when the
// process is starved of CPU.
class stalled_callback_thread : public held_nats_thread {
  public:
    explicit stalled_callback_thread(const std::string& url) {
        natsOptions* opts = nullptr;
        BROADCASTER_REQUIRE(natsOptions_Create(&opts) == NATS_OK);
        natsOptions_SetURL(opts, url.c_str());
        natsOptions_SetClosedCB(opts, on_closed, this);
        BROADCASTER_REQUIRE(natsConnection_Connect(&nc_, opts) == NATS_OK);
        natsOptions_Destroy(opts);
        natsConnection_Close(nc_);
        wait_until_held();
    }
    ~stalled_callback_thread() {
        release();
        natsConnection_Destroy(nc_);
    }

  private:
    static void on_closed(natsConnection*, void* self) {
        hold(static_cast<stalled_callback_thread*>(self));
    }
    natsConnection* nc_ = nullptr;
};

}  // namespace broadcaster::test
