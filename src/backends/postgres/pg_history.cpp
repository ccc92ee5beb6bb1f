#include "pg_history.hpp"

#include "../../utf8.hpp"

#include "../tls/loaded_openssl.hpp"

#include <charconv>
#include <cstring>

namespace broadcaster::detail {

namespace {

// NOTIFY's limit is 7999 bytes; the marker, 19 digits and ':' come first.
constexpr std::size_t max_inline_message = 7999 - 21;

}  // namespace

std::optional<std::uint64_t> parse_history_position(std::string_view position) noexcept {
    std::uint64_t n = 0;
    const auto* end = position.data() + position.size();
    const auto [stop, ec] = std::from_chars(position.data(), end, n);
    // Positions are bigint in the table.
    if (position.empty() || ec != std::errc() || stop != end ||
        n > static_cast<std::uint64_t>(INT64_MAX)) {
        return std::nullopt;
    }
    return n;
}

std::optional<history_notification> parse_history_notification(std::string_view payload) {
    if (payload.size() < 2 || payload.front() != history_marker) {
        return std::nullopt;
    }
    payload.remove_prefix(1);
    const auto colon = payload.find(':');
    const auto position = parse_history_position(payload.substr(0, colon));
    if (!position || *position == 0) {
        return std::nullopt;
    }
    history_notification out;
    out.position = *position;
    if (colon != std::string_view::npos) {
        out.message.emplace(payload.substr(colon + 1));
    }
    return out;
}

bool history_inline(const std::string& message) {
    return message.size() <= max_inline_message && message.find('\0') == std::string::npos &&
           is_valid_utf8(message);
}

std::int64_t history_lock_key(const std::string& table, const std::string& channel) {
    std::string name = table;
    name += '\0';
    name += channel;
    unsigned char digest[SHA256_DIGEST_LENGTH];
    SHA256(reinterpret_cast<const unsigned char*>(name.data()), name.size(), digest);
    std::int64_t key = 0;
    std::memcpy(&key, digest, sizeof key);
    return key;
}

history_statements::history_statements(const std::string& t)
    : create("CREATE TABLE IF NOT EXISTS " + t +
             " (channel text NOT NULL, seq bigint NOT NULL, payload bytea NOT NULL, "
             "PRIMARY KEY (channel, seq))"),
      check("SELECT 1 FROM " + t + " LIMIT 0"),
      lock("SELECT pg_advisory_xact_lock($1::bigint)"),
      // Under the channel's lock (taken by an earlier statement, so this one's
      // snapshot sees every commit before it): the next number, the row, the trim and
      // the notification, all in one transaction.
      publish("WITH s AS (SELECT COALESCE(max(seq), 0) + 1 AS seq FROM " + t +
              " WHERE channel = $1::text), "
              "ins AS (INSERT INTO " +
              t +
              " (channel, seq, payload) SELECT $1::text, seq, $3::bytea FROM s RETURNING seq), "
              // The row that falls out of the last N: one index lookup. A range
              // (`seq <= new - N`) would walk the index entries of every row deleted
              // before and not vacuumed yet, at each publish. Rows left behind by a
              // publisher with a larger N go in a sweep every 1024 positions.
              "del AS (DELETE FROM " +
              t +
              " WHERE channel = $1::text AND seq = (SELECT seq FROM s) - $4::bigint), "
              "sweep AS (DELETE FROM " +
              t +
              " WHERE channel = $1::text AND seq < (SELECT seq FROM s) - $4::bigint "
              "AND (SELECT seq FROM s) % 1024 = 0) "
              "SELECT pg_notify($2::text, chr(30) || ins.seq::text || "
              "CASE WHEN $6::boolean THEN ':' || $5::text ELSE '' END) FROM ins"),
      last_position("SELECT COALESCE(max(seq), 0)::text FROM " + t + " WHERE channel = $1::text"),
      // One snapshot for the bounds and the rows: a trim cannot slip between them.
      read_after("WITH b AS (SELECT min(seq) AS lo, max(seq) AS hi FROM " + t +
                 " WHERE channel = $1::text) "
                 "SELECT b.lo::text, b.hi::text, r.seq::text, r.payload FROM b LEFT JOIN " +
                 t + " r ON r.channel = $1::text AND r.seq > $2::bigint ORDER BY r.seq"),
      // Ordered by the number (qualified: `seq` alone would be the text column).
      read_latest("SELECT r.seq::text, r.payload FROM (SELECT seq, payload FROM " + t +
                  " WHERE channel = $1::text ORDER BY seq DESC LIMIT $2::bigint) r ORDER BY r.seq"),
      read_range("SELECT r.seq::text, r.payload FROM " + t +
                 " r WHERE r.channel = $1::text AND r.seq > $2::bigint AND r.seq <= $3::bigint "
                 "ORDER BY r.seq") {}

}  // namespace broadcaster::detail
