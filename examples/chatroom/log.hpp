#pragma once

// The chat server's log: one line per event on stderr, each written whole.

#include <ctime>
#include <string>
#include <string_view>

namespace chat {

// "2026-01-02T03:04:05Z broadcaster-chat: text\n", with control characters in `text`
// shown as '?' so that a line stays one line.
std::string format_log_line(std::string_view text, std::time_t now);

// Writes one log line to stderr (URLs in it must already be redacted). Safe from any
// thread: the line leaves in one write, never interleaved with another.
void log(std::string_view text);

}  // namespace chat
