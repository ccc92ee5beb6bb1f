#pragma once

// A message as nats.c hands it to a subscription's callback, copied out of nats.c's
// memory (on its delivery thread, before the message is freed).

#include "nats_api.hpp"

#include <cstdint>
#include <optional>
#include <string>

namespace broadcaster::detail {

struct nats_delivery {
    std::string subscribed;            // the subscription's subject: a channel, or a pattern
    std::int64_t subscription_id = 0;  // nats.c's ID of that subscription
    std::string subject;               // the subject it was published on
    std::string data;
    // Republished by a JetStream stream (history on): the message's stream sequence and
    // that of the previous message of its subject (0: none), from the Nats-Sequence and
    // Nats-Last-Sequence headers.
    std::uint64_t seq = 0;
    std::uint64_t previous_seq = 0;
    // How many messages nats.c had dropped for the subscription by the time this one
    // was delivered (it drops past the subscription's pending limits); stream
    // messages (seq set) only.
    std::int64_t dropped_before = 0;
};

// None when the subscription was closed meanwhile: nats.c may still hand over a message
// that was queued for a subscription being unsubscribed, whose subject is gone then.
std::optional<nats_delivery> copy_delivery(natsSubscription* sub, natsMsg* msg);

}  // namespace broadcaster::detail
