#include "postgres_client.hpp"

#include "../../completion.hpp"
#include "../../utf8.hpp"
#include "../tls/loaded_openssl.hpp"

#include <broadcaster/error.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <charconv>
#include <cstdint>
#include <set>

namespace broadcaster::detail {

namespace asio = boost::asio;
using asio::use_awaitable;
using boost::system::error_code;
using boost::system::system_error;

namespace {

// NOTIFY payloads are text of less than 8000 bytes. A message that cannot go inline
// (too large, a NUL byte, not UTF-8) is stored in the payload table and the
// notification carries this marker and the row's id instead.
constexpr char reference_marker = '\x1f';
constexpr std::size_t max_inline_payload = 7999;
// Publishes sent in one pipeline at most.
constexpr std::size_t max_batch = 256;

// A first byte 0x1E would read as a history notification (pg_history.hpp).
bool fits_inline(const std::string& message) {
    return message.size() <= max_inline_payload && message.find('\0') == std::string::npos &&
           is_valid_utf8(message) &&
           (message.empty() ||
            (message.front() != reference_marker && message.front() != history_marker));
}

// A reference to the payload table as send_large NOTIFYs it: the marker and a row id.
// Anything else (another app's NOTIFY that happens to start with 0x1F) is a message as
// sent: a fetch would fail on it.
bool is_reference(const std::string& payload) {
    if (payload.size() < 2 || payload.front() != reference_marker) {
        return false;
    }
    const char* first = payload.data() + 1;
    const char* last = payload.data() + payload.size();
    std::int64_t id = 0;
    const auto [end, ec] = std::from_chars(first, last, id);
    return ec == std::errc() && end == last && *first != '-' && id > 0;
}

}  // namespace

std::string postgres_channel(const std::string& channel) {
    constexpr std::size_t max_identifier = 63;
    if (channel.size() <= max_identifier) {
        return channel;
    }
    unsigned char digest[SHA256_DIGEST_LENGTH];
    SHA256(reinterpret_cast<const unsigned char*>(channel.data()), channel.size(), digest);
    static const char hex[] = "0123456789abcdef";
    std::string name = "bc_";
    for (const auto byte : digest) {
        name += hex[byte >> 4];
        name += hex[byte & 15];
    }
    name.resize(max_identifier);  // 60 hex digits: 240 bits of SHA-256
    return name;
}

postgres_client::postgres_client(asio::any_io_executor strand, const postgres_config& config,
                                 std::weak_ptr<backend_sink> sink)
    : supervised_client(std::move(strand), config, std::move(sink)),
      config_(config),
      publishes_(strand_),
      publish_wake_(strand_),
      publish_deadline_(strand_) {}

// ---- supervision -------------------------------------------------------------------

void postgres_client::connect(completion_handler handler) {
    start_supervision(std::move(handler), shared_from_this());
}

asio::awaitable<void> postgres_client::open_connections() {
    listener_ = std::make_shared<pg_connection>(strand_, config_.conninfo, config_.connect_timeout,
                                                config_.redacted_url);
    publisher_ = std::make_shared<pg_connection>(strand_, config_.conninfo, config_.connect_timeout,
                                                 config_.redacted_url);
    const auto listener = listener_;
    const auto publisher = publisher_;
    co_await listener->open();
    co_await publisher->open();
    history_sql_.emplace(publisher->quote_identifier(config_.history_table));
    if (keeps_history()) {
        co_await create_history_table(*publisher);
    }
}

void postgres_client::on_connected() {
    table_ready_ = false;
    listening_ = false;
    spawn(strand_, run_listener(generation_, listener_));
    spawn(strand_, run_publisher(generation_, publisher_));
}

void postgres_client::connection_lost(std::uint64_t generation, error_code ec) {
    if (!mark_lost(generation, ec)) {
        return;
    }
    // The publish being sent may or may not have reached the server.
    publishes_.complete_in_flight(error::connection_lost);
    // Subscribes waiting for their LISTEN fail now; the app can retry. Unsubscribes
    // are done: the new connection will not LISTEN to those channels.
    complete(listeners_.fail_all(error::connection_lost));
    fail_reads(error::connection_lost);
    arm_publish_deadline();
}

void postgres_client::close_connections() {
    if (listener_) {
        listener_->close();
    }
    if (publisher_) {
        publisher_->close();
    }
}

void postgres_client::disconnect(completion_handler handler) {
    stop();
    post_completion(std::move(handler), strand_, error_code());
}

void postgres_client::stop() {
    if (stopping_ && !listener_) {
        return;
    }
    stop_supervision();
    close_connections();
    listener_.reset();
    publisher_.reset();
    publish_wake_.cancel();
    publish_deadline_.cancel();
    // The app's own disconnect (or its broadcast's end) cut them short.
    fail_everything(asio::error::operation_aborted);
}

void postgres_client::fail_everything(error_code ec) {
    publishes_.complete_all(ec);
    complete(listeners_.clear(ec));
    fail_reads(ec);
    delivered_.clear();
}

void postgres_client::complete(std::vector<listener_queue<completion_handler>::completion> done) {
    for (auto& c : done) {
        post_completion(std::move(c.handler), strand_, c.ec);
    }
}

// ---- listener ----------------------------------------------------------------------

void postgres_client::subscribe(std::string channel, completion_handler handler) {
    if (!ready_) {
        // Stopped by the app, or reconnecting: the app may retry once connected again.
        post_completion(std::move(handler), strand_,
                        error_code(stopping_ ? error::not_connected : error::connection_lost));
        return;
    }
    auto pg_channel = postgres_channel(channel);
    if (listeners_.push(true, std::move(channel), std::move(pg_channel), std::move(handler))) {
        listener_->cancel_wait();
    }
}

void postgres_client::unsubscribe(std::string channel, completion_handler handler) {
    auto pg_channel = postgres_channel(channel);
    delivered_.erase(channel);  // a later subscribe starts from where the history ends then
    if (!ready_) {
        listeners_.forget(pg_channel);
        post_completion(std::move(handler), strand_, error_code());
        return;
    }
    if (listeners_.push(false, std::move(channel), std::move(pg_channel), std::move(handler))) {
        listener_->cancel_wait();
    }
}

// One thing at a time on the listener connection: a LISTEN/UNLISTEN, a payload fetch,
// or the idle wait for input, which is the only one a new command interrupts.
asio::awaitable<void> postgres_client::run_listener(std::uint64_t generation,
                                                    std::shared_ptr<pg_connection> connection) {
    const auto self = shared_from_this();
    try {
        // After a reconnect: LISTEN again to everything, then say so. Commands that
        // come meanwhile queue up.
        for (const auto& name : listeners_.listened()) {
            co_await connection->exec("LISTEN " + connection->quote_identifier(name));
            if (!current(generation)) {
                co_return;
            }
        }
        if (keeps_history()) {
            co_await recover_history(generation, *connection);
            if (!current(generation)) {
                co_return;
            }
        }
        listening_ = true;
        publish_wake_.cancel();
        if (reconnecting_) {
            reconnecting_ = false;
            report(connection_state::connected, {});
        }
        for (;;) {
            if (const auto* command = listeners_.start_next()) {
                const auto sql = (command->listen ? "LISTEN " : "UNLISTEN ") +
                                 connection->quote_identifier(command->pg_channel);
                const bool note_position = command->listen && keeps_history();
                const auto channel = command->channel;
                error_code ec;
                try {
                    co_await connection->exec(sql);
                    if (note_position) {
                        // After the LISTEN: what commits later is notified, what
                        // committed before is at or before this position.
                        co_await note_last_position(*connection, channel);
                    }
                } catch (const system_error& e) {
                    if (e.code() != error::broker_error) {
                        throw;  // the connection is gone: connection_lost completes it
                    }
                    ec = e.code();
                }
                if (!current(generation)) {
                    co_return;  // completed by connection_lost or stop
                }
                // Subscribed means subscribed: LISTEN has been executed now.
                if (auto done = listeners_.finish(ec)) {
                    post_completion(std::move(done->handler), strand_, done->ec);
                }
            } else if (!reads_.empty()) {
                co_await run_read(generation, *connection);
                if (!current(generation)) {
                    co_return;
                }
            } else if (listeners_.begin_wait()) {
                co_await connection->wait_for_input();
                if (!current(generation)) {
                    co_return;
                }
                listeners_.end_wait();
            }
            co_await deliver_notifications(*connection);
            if (!current(generation)) {
                co_return;
            }
        }
    } catch (const system_error& e) {
        connection_lost(generation, e.code());
    } catch (const std::exception&) {
        connection_lost(generation, error::protocol_error);
    }
}

asio::awaitable<void> postgres_client::deliver_notifications(pg_connection& connection) {
    // Fetching a stored payload reads more input, which may hold more notifications:
    // deliver until none is left, or they would wait for the next traffic.
    for (auto notifications = connection.take_notifications(); !notifications.empty();
         notifications = connection.take_notifications()) {
        co_await deliver(connection, std::move(notifications));
    }
}

asio::awaitable<void> postgres_client::deliver(pg_connection& connection,
                                               std::vector<pg_notification> notifications) {
    for (auto& notification : notifications) {
        const auto* ours = listeners_.find(notification.channel);
        if (!ours) {
            continue;  // unlistened meanwhile
        }
        if (auto kept = parse_history_notification(notification.payload)) {
            co_await deliver_kept(connection, *ours, std::move(*kept));
            continue;
        }
        std::string message = std::move(notification.payload);
        if (is_reference(message)) {
            // The message is in the payload table; fetch it (in order: the next
            // notification waits).
            const auto table = connection.quote_identifier(config_.payload_table);
            std::vector<pg_param> id{{message.substr(1)}};
            pg_result row;
            try {
                row = co_await connection.exec("SELECT payload FROM " + table + " WHERE id = $1",
                                               std::move(id), true);
            } catch (const system_error& e) {
                if (e.code() != error::broker_error) {
                    throw;  // the connection is gone
                }
                // Refused (no such table, no right to read it): this message is lost,
                // the connection and the messages after it are not.
                continue;
            }
            if (!row || libpq().PQntuples(row.get()) != 1) {
                continue;  // removed after the retention period: too late to deliver
            }
            message.assign(libpq().PQgetvalue(row.get(), 0, 0),
                           static_cast<std::size_t>(libpq().PQgetlength(row.get(), 0, 0)));
        }
        // Looked up again: the fetch gave subscribe and unsubscribe time to run.
        const auto* channel = listeners_.find(notification.channel);
        if (!channel) {
            continue;
        }
        if (auto sink = sink_.lock()) {
            sink->deliver(event(*channel, std::move(message)));
        }
    }
}

// ---- publisher ---------------------------------------------------------------------

void postgres_client::publish(std::string channel, std::string message,
                              completion_handler handler) {
    if (stopping_) {
        post_completion(std::move(handler), strand_, error_code(error::not_connected));
        return;
    }
    publishes_.push({std::move(channel), std::move(message)}, std::move(handler),
                    clock::now() + config_.publish_timeout, shared_from_this());
    publish_wake_.cancel();
    arm_publish_deadline();
}

void postgres_client::cancel_publish(std::uint64_t id) {
    if (const auto it = publishes_.find_waiting(id); it != publishes_.end()) {
        publishes_.complete_waiting(it, asio::error::operation_aborted);
    }
}

asio::awaitable<void> postgres_client::run_publisher(std::uint64_t generation,
                                                     std::shared_ptr<pg_connection> connection) {
    const auto self = shared_from_this();
    try {
        for (;;) {
            // Publishes (those queued during an outage included) wait until every channel
            // is listened to again: sent earlier, they could commit before the LISTENs,
            // and this instance's own subscribers would miss them.
            if (publishes_.empty() || !listening_) {
                publish_wake_.expires_at(asio::steady_timer::time_point::max());
                co_await publish_wake_.async_wait(asio::as_tuple(use_awaitable));
                // Maybe woken on a connection lost meanwhile: the next one (with its own
                // publisher) sends what waits.
                if (!current(generation)) {
                    co_return;
                }
                continue;
            }
            // With history: in order too, in batches of one transaction, each message
            // with its row (postgres_history.cpp).
            if (keeps_history()) {
                std::vector<pg_statement> statements;
                publishes_.mark_sent(history_batch(statements));
                in_flight_since_ = clock::now();
                error_code ec;
                try {
                    co_await connection->exec_transaction(std::move(statements));
                } catch (const system_error& e) {
                    if (e.code() != error::broker_error && e.code() != error::payload_too_large) {
                        throw;  // the connection is gone
                    }
                    ec = e.code();
                }
                if (!current(generation)) {
                    co_return;  // lost meanwhile: connection_lost completed them
                }
                publishes_.complete_in_flight(ec);
                continue;
            }
            // In order, so each publisher's order is the server's. Small messages go
            // in batches: one round trip and one commit for many. Postgres folds
            // identical notifications of one transaction into one, so a batch ends
            // before a repeat.
            std::vector<std::vector<pg_param>> batch;
            std::set<std::pair<std::string_view, std::string_view>> in_batch;
            const auto first = publishes_.first_waiting();
            for (auto it = first; it != publishes_.end(); ++it) {
                const auto& p = it->payload;
                if (batch.size() == max_batch || !fits_inline(p.message) ||
                    !in_batch.emplace(p.channel, p.message).second) {
                    break;
                }
                batch.push_back({{postgres_channel(p.channel)}, {p.message}});
            }
            publishes_.mark_sent(std::max<std::size_t>(batch.size(), 1));
            in_flight_since_ = clock::now();
            error_code ec;
            try {
                if (batch.empty()) {
                    co_await send_large(*connection, *first);
                } else {
                    co_await connection->exec_transaction("SELECT pg_notify($1, $2)",
                                                          std::move(batch));
                }
            } catch (const system_error& e) {
                if (e.code() != error::broker_error && e.code() != error::payload_too_large) {
                    throw;  // the connection is gone
                }
                ec = e.code();
            }
            if (!current(generation)) {
                co_return;  // lost meanwhile: connection_lost completed them
            }
            publishes_.complete_in_flight(ec);
        }
    } catch (const system_error& e) {
        connection_lost(generation, e.code());
    } catch (const std::exception&) {
        connection_lost(generation, error::protocol_error);
    }
}

asio::awaitable<void> postgres_client::send_large(pg_connection& connection,
                                                  const pending_publish& p) {
    const auto channel = postgres_channel(p.payload.channel);
    const auto table = connection.quote_identifier(config_.payload_table);
    if (!table_ready_) {
        // Two instances may race to create it; the loser's error is harmless if the
        // table is there afterwards.
        bool created = true;
        try {
            co_await connection.exec("CREATE TABLE IF NOT EXISTS " + table +
                                     " (id bigserial PRIMARY KEY, created timestamptz NOT NULL "
                                     "DEFAULT now(), payload bytea NOT NULL)");
        } catch (const system_error& e) {
            if (e.code() != error::broker_error) {
                throw;
            }
            created = false;
        }
        if (!created) {
            co_await connection.exec("SELECT 1 FROM " + table + " LIMIT 0");
        }
        table_ready_ = true;
    }
    // Insert and notify in one statement, so one transaction: a listener never sees
    // the notification before the row.
    std::vector<pg_param> params{{channel}, {p.payload.message, true}};
    co_await connection.exec("WITH p AS (INSERT INTO " + table +
                                 " (payload) VALUES ($2) RETURNING id) "
                                 "SELECT pg_notify($1, chr(31) || id::text) FROM p",
                             std::move(params));
    if (++large_since_cleanup_ >= 64) {
        large_since_cleanup_ = 0;
        std::vector<pg_param> retention{{std::to_string(config_.payload_retention.count())}};
        co_await connection.exec(
            "DELETE FROM " + table + " WHERE created < now() - make_interval(secs => $1)",
            std::move(retention));
    }
}

void postgres_client::arm_publish_deadline() {
    if (publish_deadline_armed_ || publishes_.empty()) {
        return;
    }
    publish_deadline_armed_ = true;
    auto at = publishes_.front().deadline;
    if (ready_ && publishes_.in_flight() > 0) {
        at = std::max(at, in_flight_since_ + config_.publish_timeout);
    }
    publish_deadline_.expires_at(at);
    publish_deadline_.async_wait(
        asio::bind_executor(strand_, [self = shared_from_this()](error_code ec) {
            self->publish_deadline_armed_ = false;
            if (!ec && !self->stopping_) {
                self->on_publish_deadline();
            }
        }));
}

void postgres_client::on_publish_deadline() {
    const auto now = clock::now();
    if (ready_) {
        // Counted from the sending: a long wait in the queue is no sign of an outage.
        if (publishes_.in_flight() > 0 && in_flight_since_ + config_.publish_timeout <= now) {
            connection_lost(generation_, error::timeout);  // the server does not answer
        }
    } else {
        while (publishes_.first_waiting() != publishes_.end() &&
               publishes_.first_waiting()->deadline <= now) {
            publishes_.complete_waiting(publishes_.first_waiting(), error::reconnect_timeout);
        }
    }
    arm_publish_deadline();
}

}  // namespace broadcaster::detail
