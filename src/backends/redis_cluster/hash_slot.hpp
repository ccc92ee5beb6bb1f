#pragma once

// Redis Cluster's key (and shard channel) hash slot: CRC16-XMODEM of the name, or of
// its first non-empty `{hash tag}`, modulo 16384 (the cluster specification's
// key_hash_slot).

#include <cstdint>
#include <string_view>

namespace broadcaster::detail {

inline constexpr std::uint16_t cluster_slots = 16384;

// CRC16-XMODEM (polynomial 0x1021, initial value 0), as the cluster specification uses.
std::uint16_t crc16_xmodem(std::string_view data) noexcept;

// The slot of `name`: only the part between the first '{' and the next '}' is hashed
// when that part is not empty, so channels sharing a tag share a shard.
std::uint16_t hash_slot(std::string_view name) noexcept;

}  // namespace broadcaster::detail
