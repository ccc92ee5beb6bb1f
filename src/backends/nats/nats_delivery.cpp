#include "nats_delivery.hpp"

namespace broadcaster::detail {

std::optional<nats_delivery> copy_delivery(natsSubscription* sub, natsMsg* msg) {
    const char* subscribed = natsSubscription_GetSubject(sub);
    const char* subject = natsMsg_GetSubject(msg);
    if (subscribed == nullptr || subject == nullptr) {
        return std::nullopt;
    }
    const char* data = natsMsg_GetData(msg);
    const int length = natsMsg_GetDataLength(msg);
    return nats_delivery{subscribed, subject,
                         data == nullptr || length <= 0
                             ? std::string()
                             : std::string(data, static_cast<std::size_t>(length))};
}

}  // namespace broadcaster::detail
