#include "slot_map.hpp"

#include "cluster_config.hpp"

#include <broadcaster/error.hpp>

#include <boost/system/system_error.hpp>

#include <algorithm>

namespace broadcaster::detail {
namespace {

[[noreturn]] void malformed() {
    throw boost::system::system_error(error::protocol_error,
                                      "redis-cluster: malformed CLUSTER SLOTS reply");
}

std::string text(const redisReply& reply) {
    if (reply.type != REDIS_REPLY_STRING && reply.type != REDIS_REPLY_STATUS) {
        malformed();
    }
    return {reply.str, reply.len};
}

}  // namespace

slot_map slot_map::from_cluster_slots(const redisReply& reply, const std::string& queried_host) {
    if (reply.type != REDIS_REPLY_ARRAY) {
        malformed();
    }
    slot_map out;
    for (std::size_t i = 0; i < reply.elements; ++i) {
        const auto& range = *reply.element[i];
        // [first slot, last slot, [master host, port, id, ...], replicas...]
        if (range.type != REDIS_REPLY_ARRAY || range.elements < 3 ||
            range.element[0]->type != REDIS_REPLY_INTEGER ||
            range.element[1]->type != REDIS_REPLY_INTEGER ||
            range.element[2]->type != REDIS_REPLY_ARRAY || range.element[2]->elements < 2 ||
            range.element[2]->element[1]->type != REDIS_REPLY_INTEGER) {
            malformed();
        }
        const auto first = range.element[0]->integer;
        const auto last = range.element[1]->integer;
        if (first < 0 || last < first || last >= cluster_slots) {
            malformed();
        }
        std::string host = text(*range.element[2]->element[0]);
        if (host == "?") {
            continue;  // a master whose address is unknown: as if the slots had none
        }
        if (host.empty()) {
            host = queried_host;
        }
        const auto address =
            join_address(host, std::to_string(range.element[2]->element[1]->integer));
        auto it = std::find(out.masters_.begin(), out.masters_.end(), address);
        if (it == out.masters_.end()) {
            out.masters_.push_back(address);
            it = out.masters_.end() - 1;
        }
        const auto index = static_cast<std::int16_t>(it - out.masters_.begin());
        std::fill(out.owners_.begin() + first, out.owners_.begin() + last + 1, index);
    }
    return out;
}

bool slot_map::is_master(const std::string& address) const noexcept {
    return std::find(masters_.begin(), masters_.end(), address) != masters_.end();
}

std::size_t slot_map::covered() const noexcept {
    return static_cast<std::size_t>(
        std::count_if(owners_.begin(), owners_.end(), [](std::int16_t i) { return i >= 0; }));
}

}  // namespace broadcaster::detail
