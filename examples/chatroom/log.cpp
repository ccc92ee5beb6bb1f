#include "log.hpp"

#include <unistd.h>

#include <cerrno>
#include <mutex>

namespace chat {

std::string format_log_line(std::string_view text, std::time_t now) {
    char stamp[32];
    std::tm parts{};
    gmtime_r(&now, &parts);
    std::strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%SZ", &parts);
    std::string line;
    line.reserve(text.size() + 40);
    line.append(stamp).append(" broadcaster-chat: ");
    for (const char c : text) {
        const auto byte = static_cast<unsigned char>(c);
        line.push_back(byte < 0x20 || byte == 0x7f ? '?' : c);
    }
    line.push_back('\n');
    return line;
}

void log(std::string_view text) {
    const auto line = format_log_line(text, std::time(nullptr));
    // One write per line; the mutex keeps a line whole even when the kernel splits a
    // long write (pipes beyond PIPE_BUF) or another thread logs at the same time.
    static std::mutex mutex;
    std::lock_guard lock(mutex);
    std::string_view rest = line;
    while (!rest.empty()) {
        const auto n = ::write(STDERR_FILENO, rest.data(), rest.size());
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return;  // nowhere to report it
        }
        rest.remove_prefix(static_cast<std::size_t>(n));
    }
}

}  // namespace chat
