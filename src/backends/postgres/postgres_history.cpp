// postgres_client's history (`postgres://?history=N`, docs/history.md): the batch of
// publishes that keeps messages in the table, the positions the listener delivers,
// history reads, and what a channel missed while the connection was down.

#include "postgres_client.hpp"

#include "../../completion.hpp"

#include <broadcaster/error.hpp>

#include <algorithm>
#include <cstdint>
#include <set>

namespace broadcaster::detail {

namespace asio = boost::asio;
using boost::system::error_code;
using boost::system::system_error;

namespace {

// Publishes sent in one transaction at most, and their bytes (past the first).
constexpr std::size_t max_batch = 256;
constexpr std::size_t max_batch_bytes = 1 << 20;
constexpr auto all_rows = static_cast<std::uint64_t>(INT64_MAX);
// Names of the statements prepared on the publisher connection.
constexpr const char* lock_statement = "broadcaster_history_lock";
constexpr const char* publish_statement = "broadcaster_history_publish";

std::string text(const pg_result& rows, int row, int column) {
    return std::string(libpq().PQgetvalue(rows.get(), row, column),
                       static_cast<std::size_t>(libpq().PQgetlength(rows.get(), row, column)));
}

// A position column; the table only holds numbers, anything else is not our table.
std::uint64_t position(const pg_result& rows, int row, int column) {
    const auto n = parse_history_position(text(rows, row, column));
    if (!n) {
        throw system_error(error::protocol_error, "postgres: a history row without a position");
    }
    return *n;
}

int row_count(const pg_result& rows) {
    return rows ? libpq().PQntuples(rows.get()) : 0;
}

}  // namespace

asio::awaitable<void> postgres_client::create_history_table(pg_connection& connection) {
    // Two instances may race to create it; the loser's error is harmless if the table
    // is there afterwards (if not, the check fails the connect with the reason).
    bool created = true;
    try {
        co_await connection.exec(history_sql_->create);
    } catch (const system_error& e) {
        if (e.code() != error::broker_error) {
            throw;
        }
        created = false;
    }
    if (!created) {
        co_await connection.exec(history_sql_->check);
    }
    // Run at every publish: planned once per connection.
    co_await connection.prepare(lock_statement, history_sql_->lock);
    co_await connection.prepare(publish_statement, history_sql_->publish);
}

std::size_t postgres_client::history_batch(std::vector<pg_statement>& statements) {
    // The channels' locks first, in one order everywhere (no deadlock between two
    // publishers), each held until the commit: a channel's positions commit in order.
    std::set<std::int64_t> locks;
    std::size_t count = 0;
    std::size_t bytes = 0;
    for (auto it = publishes_.first_waiting(); it != publishes_.end() && count < max_batch; ++it) {
        const auto size = it->payload.message.size();
        if (count > 0 && bytes + size > max_batch_bytes) {
            break;
        }
        locks.insert(history_lock_key(config_.history_table, it->payload.channel));
        bytes += size;
        ++count;
    }
    statements.reserve(locks.size() + count);
    for (const auto key : locks) {
        statements.push_back({lock_statement, {{std::to_string(key)}}, true});
    }
    const auto kept = std::to_string(config_.history);
    auto it = publishes_.first_waiting();
    for (std::size_t i = 0; i < count; ++i, ++it) {
        const auto& p = it->payload;
        const bool inline_message = history_inline(p.message);
        std::vector<pg_param> params;
        params.push_back({p.channel});
        params.push_back({postgres_channel(p.channel)});
        params.push_back({p.message, true});
        params.push_back({kept});
        params.push_back({inline_message ? p.message : std::string()});
        params.push_back({inline_message ? "true" : "false"});
        statements.push_back({publish_statement, std::move(params), true});
    }
    return count;
}

asio::awaitable<void> postgres_client::note_last_position(pg_connection& connection,
                                                          std::string channel) {
    std::vector<pg_param> params{{channel}};
    const auto rows = co_await connection.exec(history_sql_->last_position, std::move(params));
    if (row_count(rows) != 1) {
        throw system_error(error::protocol_error, "postgres: no last position");
    }
    delivered_[channel] = position(rows, 0, 0);
}

asio::awaitable<void> postgres_client::recover_history(std::uint64_t generation,
                                                       pg_connection& connection) {
    // Every channel is LISTENed again: what commits from now on is notified, what
    // committed meanwhile is in the table (or was trimmed: a gap).
    for (const auto& pg_channel : listeners_.listened()) {
        const auto* ours = listeners_.find(pg_channel);
        if (!ours) {
            continue;
        }
        const std::string channel = *ours;
        if (delivered_.count(channel) > 0) {
            co_await fill(connection, channel, all_rows, false);
        } else {
            co_await note_last_position(connection, channel);
        }
        if (!current(generation)) {
            co_return;
        }
    }
}

// ---- notifications -----------------------------------------------------------------

asio::awaitable<void> postgres_client::deliver_kept(pg_connection& connection, std::string channel,
                                                    history_notification kept) {
    if (!keeps_history()) {
        // A publisher with history, a listener without: the message, no position.
        if (!kept.message) {
            std::vector<pg_param> params{
                {channel}, {std::to_string(kept.position - 1)}, {std::to_string(kept.position)}};
            pg_result rows;
            try {
                rows = co_await connection.exec(history_sql_->read_range, std::move(params), true);
            } catch (const system_error& e) {
                if (e.code() != error::broker_error) {
                    throw;
                }
            }
            if (row_count(rows) != 1) {
                co_return;  // trimmed already, or no right to read it: like a payload reference
            }
            kept.message = text(rows, 0, 1);
        }
        if (!listeners_.find(postgres_channel(channel))) {
            co_return;  // unlistened while the row was read
        }
        if (auto sink = sink_.lock()) {
            sink->deliver(event(std::move(channel), std::move(*kept.message)));
        }
        co_return;
    }
    const auto it = delivered_.find(channel);
    if (it == delivered_.end()) {
        co_return;  // its subscribe is under way: published before it completed
    }
    if (kept.position <= it->second) {
        co_return;  // delivered already, from the table
    }
    if (kept.message && kept.position == it->second + 1) {
        it->second = kept.position;
        if (auto sink = sink_.lock()) {
            sink->deliver(event(channel, std::move(*kept.message), std::to_string(kept.position)));
        }
        co_return;
    }
    // In the table only, or after a hole (which a publisher outside the library could
    // make): read up to it, in order.
    co_await fill(connection, std::move(channel), kept.position, true);
}

asio::awaitable<void> postgres_client::fill(pg_connection& connection, std::string channel,
                                            std::uint64_t upto, bool must_reach) {
    auto it = delivered_.find(channel);
    if (it == delivered_.end() || it->second >= upto) {
        co_return;
    }
    const auto after = it->second;
    std::vector<pg_param> params{{channel}, {std::to_string(after)}, {std::to_string(upto)}};
    pg_result rows;
    bool refused = false;
    try {
        rows = co_await connection.exec(history_sql_->read_range, std::move(params), true);
    } catch (const system_error& e) {
        if (e.code() != error::broker_error) {
            throw;  // the connection is gone: the next one reads it again
        }
        refused = true;  // no table, no right to read it: what it held is lost to us
    }
    if (delivered_.find(channel) == delivered_.end()) {
        co_return;  // unsubscribed meanwhile
    }
    const auto sink = sink_.lock();
    const int count = row_count(rows);
    const bool hole = count > 0 ? position(rows, 0, 0) != after + 1 : must_reach;
    if (refused || hole) {
        // Trimmed before it could be read: never skipped silently. Subscribers end
        // after what they have; the rows still kept follow.
        if (sink) {
            sink->history_gap(channel);
        }
    }
    for (int row = 0; row < count; ++row) {
        // Looked up per row: delivering may make the core unsubscribe.
        it = delivered_.find(channel);
        if (it == delivered_.end()) {
            co_return;
        }
        const auto at = position(rows, row, 0);
        if (at <= it->second) {
            continue;
        }
        it->second = at;
        if (sink) {
            sink->deliver(event(channel, text(rows, row, 1), std::to_string(at)));
        }
    }
    it = delivered_.find(channel);
    if (must_reach && it != delivered_.end()) {
        it->second = std::max(it->second, upto);
    }
}

// ---- history reads -----------------------------------------------------------------

void postgres_client::history(std::string channel, history_query query,
                              backend::history_handler handler) {
    if (!ready_) {
        post_completion(std::move(handler), strand_,
                        error_code(stopping_ ? error::not_connected : error::connection_lost),
                        std::vector<event>());
        return;
    }
    if (query.after && !parse_history_position(*query.after)) {
        post_completion(std::move(handler), strand_, error_code(error::invalid_position),
                        std::vector<event>());
        return;
    }
    reads_.push_back(pending_read{std::move(channel), std::move(query), std::move(handler)});
    if (listeners_.wake()) {
        listener_->cancel_wait();
    }
}

asio::awaitable<void> postgres_client::run_read(std::uint64_t generation,
                                                pg_connection& connection) {
    // It stays at the front while it runs: a lost connection completes it from there.
    const auto channel = reads_.front().channel;
    const auto query = reads_.front().query;
    read_result result;
    try {
        result = co_await read_history(connection, channel, query);
    } catch (const system_error& e) {
        if (e.code() != error::broker_error) {
            throw;  // the connection is gone
        }
        result.ec = e.code();
    }
    if (!current(generation) || reads_.empty()) {
        co_return;
    }
    backend::history_handler handler(std::move(reads_.front().handler));
    reads_.pop_front();
    post_completion(std::move(handler), strand_, result.ec, std::move(result.events));
}

asio::awaitable<postgres_client::read_result> postgres_client::read_history(
    pg_connection& connection, std::string channel, history_query query) {
    read_result out;
    int first_row_column = 0;
    pg_result rows;
    if (query.after) {
        const auto after = *parse_history_position(*query.after);
        std::vector<pg_param> params{{channel}, {std::to_string(after)}};
        rows = co_await connection.exec(history_sql_->read_after, std::move(params), true);
        if (row_count(rows) < 1) {
            throw system_error(error::protocol_error, "postgres: no history bounds");
        }
        // Columns: the oldest and newest positions kept, then the rows after `after`.
        if (libpq().PQgetisnull(rows.get(), 0, 1)) {
            // Nothing kept, so nothing was ever published (trimming keeps the newest).
            out.ec = after > 0 ? error_code(error::invalid_position) : error_code();
            co_return out;
        }
        const auto oldest = position(rows, 0, 0);
        const auto newest = position(rows, 0, 1);
        if (after > newest) {
            out.ec = error::invalid_position;  // later than anything the channel had
            co_return out;
        }
        if (after + 1 < oldest) {
            out.ec = error::history_gap;  // what followed it was trimmed
            co_return out;
        }
        first_row_column = 2;
    } else {
        const auto limit = query.limit == 0 ? all_rows : static_cast<std::uint64_t>(query.limit);
        std::vector<pg_param> params{{channel}, {std::to_string(limit)}};
        rows = co_await connection.exec(history_sql_->read_latest, std::move(params), true);
    }
    const int count = row_count(rows);
    for (int row = 0; row < count; ++row) {
        if (libpq().PQgetisnull(rows.get(), row, first_row_column)) {
            continue;  // the bounds alone: no row after `after`
        }
        out.events.emplace_back(channel, text(rows, row, first_row_column + 1),
                                std::to_string(position(rows, row, first_row_column)));
    }
    if (query.limit > 0 && out.events.size() > query.limit) {
        out.events.erase(out.events.begin(),
                         out.events.end() - static_cast<std::ptrdiff_t>(query.limit));
    }
    co_return out;
}

void postgres_client::fail_reads(error_code ec) {
    auto reads = std::move(reads_);
    reads_.clear();
    for (auto& r : reads) {
        post_completion(std::move(r.handler), strand_, ec, std::vector<event>());
    }
}

}  // namespace broadcaster::detail
