#pragma once

#include "held_nats_thread.hpp"
#include "test_support.hpp"

#include <nats/nats.h>

#include <string>

namespace broadcaster::test {

// Holds nats.c's delivery thread (shared by every connection of the process that uses
// global delivery, as the backend does) in a callback until released: messages then
// pile up in each subscription's pending list, as when the app's process is starved.
class stalled_delivery_thread : public held_nats_thread {
  public:
    explicit stalled_delivery_thread(const std::string& url) {
        natsOptions* opts = nullptr;
        BROADCASTER_REQUIRE(natsOptions_Create(&opts) == NATS_OK);
        natsOptions_SetURL(opts, url.c_str());
        natsOptions_UseGlobalMessageDelivery(opts, true);
        BROADCASTER_REQUIRE(natsConnection_Connect(&nc_, opts) == NATS_OK);
        natsOptions_Destroy(opts);
        BROADCASTER_REQUIRE(natsConnection_Subscribe(&sub_, nc_, "stall", on_message, this) ==
                            NATS_OK);
        BROADCASTER_REQUIRE(natsConnection_PublishString(nc_, "stall", "") == NATS_OK);
        wait_until_held();
    }
    ~stalled_delivery_thread() {
        release();
        natsSubscription_Unsubscribe(sub_);
        natsSubscription_Destroy(sub_);
        natsConnection_Destroy(nc_);
    }

  private:
    static void on_message(natsConnection*, natsSubscription*, natsMsg* msg, void* self) {
        natsMsg_Destroy(msg);
        hold(static_cast<stalled_delivery_thread*>(self));
    }
    natsConnection* nc_ = nullptr;
    natsSubscription* sub_ = nullptr;
};

}  // namespace broadcaster::test
