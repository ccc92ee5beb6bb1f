#include "hash_slot.hpp"

namespace broadcaster::detail {

std::uint16_t crc16_xmodem(std::string_view data) noexcept {
    std::uint16_t crc = 0;
    for (const unsigned char byte : data) {
        crc = static_cast<std::uint16_t>(crc ^ (byte << 8));
        for (int bit = 0; bit < 8; ++bit) {
            crc = (crc & 0x8000) ? static_cast<std::uint16_t>((crc << 1) ^ 0x1021)
                                 : static_cast<std::uint16_t>(crc << 1);
        }
    }
    return crc;
}

std::uint16_t hash_slot(std::string_view name) noexcept {
    if (const auto open = name.find('{'); open != std::string_view::npos) {
        const auto close = name.find('}', open + 1);
        if (close != std::string_view::npos && close > open + 1) {
            name = name.substr(open + 1, close - open - 1);
        }
    }
    return static_cast<std::uint16_t>(crc16_xmodem(name) % cluster_slots);
}

}  // namespace broadcaster::detail
