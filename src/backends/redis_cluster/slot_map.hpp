#pragma once

// Which master serves each of the 16384 hash slots, read from a CLUSTER SLOTS reply.

#include "hash_slot.hpp"

#include <hiredis/hiredis.h>

#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace broadcaster::detail {

class slot_map {
  public:
    slot_map() { owners_.fill(-1); }

    // The map in a CLUSTER SLOTS reply, asked of `queried_host` (an empty host in the
    // reply means that one). Throws system_error(error::protocol_error) if the reply
    // is not one.
    static slot_map from_cluster_slots(const redisReply& reply, const std::string& queried_host);

    // The address ("host:port") of the master serving `slot`, or null if none does
    // (a cluster that lost a shard, or a map not read yet).
    const std::string* owner(std::uint16_t slot) const noexcept {
        const auto index = owners_[slot];
        return index < 0 ? nullptr : &masters_[static_cast<std::size_t>(index)];
    }
    bool is_master(const std::string& address) const noexcept;
    const std::vector<std::string>& masters() const noexcept { return masters_; }
    // Slots with a master.
    std::size_t covered() const noexcept;

  private:
    std::vector<std::string> masters_;
    std::array<std::int16_t, cluster_slots> owners_;
};

}  // namespace broadcaster::detail
