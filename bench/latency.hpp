#pragma once

// Latency measurement shared by the benchmarks (bench/) and `broadcaster bench`
// (tools/broadcaster/): the send time carried at the start of each message, and
// percentiles of the samples.

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstddef>
#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

namespace bench {

using clock_type = std::chrono::steady_clock;

// Bytes `stamp` writes: the send time as hex text, which every backend carries inline
// (Postgres NOTIFY included).
inline constexpr std::size_t stamp_size = 16;

// Writes the current time over the first `stamp_size` bytes of `message`, growing it
// to `stamp_size` if it is shorter.
inline void stamp(std::string& message) {
    if (message.size() < stamp_size) {
        message.resize(stamp_size, 'x');
    }
    char digits[stamp_size + 1];
    std::snprintf(digits, sizeof digits, "%016llx",
                  static_cast<unsigned long long>(clock_type::now().time_since_epoch().count()));
    message.replace(0, stamp_size, digits, stamp_size);
}

// Microseconds since `message`'s stamp was written (same process, same clock).
inline double age_us(std::string_view message) {
    clock_type::rep sent = 0;
    const auto text = message.substr(0, stamp_size);
    std::from_chars(text.data(), text.data() + text.size(), sent, 16);
    return static_cast<double>(clock_type::now().time_since_epoch().count() - sent) / 1000.0;
}

// The `q` quantile (0 to 1, nearest rank) of `samples`; 0 when there are none.
template <typename T>
double percentile(std::vector<T> samples, double q) {
    if (samples.empty()) {
        return 0;
    }
    const auto nth =
        samples.begin() + static_cast<std::ptrdiff_t>(q * static_cast<double>(samples.size() - 1));
    std::nth_element(samples.begin(), nth, samples.end());
    return static_cast<double>(*nth);
}

}  // namespace bench
