#include "nats_delivery.hpp"

#include <charconv>
#include <cstring>

namespace broadcaster::detail {
namespace {

// A header's value as a decimal number; 0 if it is missing or not one.
std::uint64_t header_number(natsMsg* msg, const char* key) {
    const char* value = nullptr;
    std::uint64_t n = 0;
    if (natsc().natsMsgHeader_Get(msg, key, &value) == NATS_OK && value != nullptr) {
        std::from_chars(value, value + std::strlen(value), n);
    }
    return n;
}

}  // namespace

std::optional<nats_delivery> copy_delivery(natsSubscription* sub, natsMsg* msg) {
    const char* subscribed = natsc().natsSubscription_GetSubject(sub);
    const char* subject = natsc().natsMsg_GetSubject(msg);
    if (subscribed == nullptr || subject == nullptr) {
        return std::nullopt;
    }
    const char* data = natsc().natsMsg_GetData(msg);
    const int length = natsc().natsMsg_GetDataLength(msg);
    const auto seq = header_number(msg, "Nats-Sequence");
    // Only a stream's messages use the drop count (to read the dropped ones back), and
    // asking takes nats.c's locks: not for every message.
    int64_t dropped = 0;
    if (seq != 0) {
        natsc().natsSubscription_GetDropped(sub, &dropped);
    }
    return nats_delivery{subscribed,
                         natsc().natsSubscription_GetID(sub),
                         subject,
                         data == nullptr || length <= 0
                             ? std::string()
                             : std::string(data, static_cast<std::size_t>(length)),
                         seq,
                         header_number(msg, "Nats-Last-Sequence"),
                         dropped};
}

}  // namespace broadcaster::detail
