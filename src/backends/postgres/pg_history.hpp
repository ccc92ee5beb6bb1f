#pragma once

// `postgres://?history=N`: what is kept in the history table and what its
// notifications carry (docs/history.md, docs/backends/postgres.md). No I/O here.
//
// Each channel has its own sequence, 1, 2, 3, ...: a message's position. A publish
// takes the channel's advisory lock, then inserts the next number, deletes what falls
// out of the last N and NOTIFYs, in one transaction: the lock is held until the commit,
// so a channel's messages commit (and are notified) in position order, with no hole.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace broadcaster::detail {

// What a history notification carries: 0x1E, the position, then ':' and the message
// when it fits in a NOTIFY; without it, the listener reads the message from the table.
struct history_notification {
    std::uint64_t position = 0;
    std::optional<std::string> message;
};

constexpr char history_marker = '\x1e';

// Nothing for a payload of another form (a NOTIFY sent by something else).
std::optional<history_notification> parse_history_notification(std::string_view payload);

// Whether `message` can ride in the notification (NOTIFY takes text of less than 8000
// bytes, without NUL).
bool history_inline(const std::string& message);

// A position as a subscriber may give it back: a decimal number (0: before the first).
std::optional<std::uint64_t> parse_history_position(std::string_view position) noexcept;

// The advisory lock that orders the publishes of `channel` in `table`: the same number
// in every process (from SHA-256, not from Postgres's hashtext, so that a batch can
// take its locks in one order everywhere and never deadlock).
std::int64_t history_lock_key(const std::string& table, const std::string& channel);

// The statements, for a table name already quoted as an identifier.
struct history_statements {
    explicit history_statements(const std::string& table);

    std::string create;         // the table, if missing
    std::string check;          // whether it can be read
    std::string lock;           // $1 key: the channel's lock, until the commit
    std::string publish;        // $1 channel, $2 its NOTIFY name, $3 message (bytea),
                                // $4 kept, $5 inline text, $6 inline or not
    std::string last_position;  // $1 channel: the newest position, 0 if none
    std::string read_after;     // $1 channel, $2 after: lo, hi, then rows after
    std::string read_latest;    // $1 channel, $2 limit: the newest rows, oldest first
    std::string read_range;     // $1 channel, $2 after, $3 up to: rows (after, up to]
};

}  // namespace broadcaster::detail
