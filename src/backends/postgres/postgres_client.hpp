#pragma once

#include "../publish_queue.hpp"
#include "../supervised_client.hpp"
#include "listener_queue.hpp"
#include "pg_connection.hpp"
#include "pg_history.hpp"
#include "postgres_config.hpp"

#include <broadcaster/backend.hpp>

#include <boost/asio/steady_timer.hpp>

#include <list>
#include <optional>
#include <unordered_map>

namespace broadcaster::detail {

// Postgres channels are identifiers of at most 63 bytes: longer names map to a stable
// hash ("bc_" + 60 hex digits of SHA-256), on LISTEN and NOTIFY alike.
std::string postgres_channel(const std::string& channel);

// The Postgres backend's state, shared with its pending operations. Two connections:
// a listener (LISTEN/UNLISTEN, notifications) and a publisher (pg_notify), so a flood
// of publishes never delays notifications and each publisher's order is kept. The
// supervisor (supervised_client) reconnects both after a loss; every channel is then
// listened to again. Runs on the strand.
//
// With `history=N` (postgres_history.cpp), publishes also keep the last N messages per
// channel in a table, notifications carry positions, history reads run on the
// listener connection, and after a reconnect each channel reads what it missed from
// the table.
class postgres_client : public supervised_client,
                        public std::enable_shared_from_this<postgres_client> {
  public:
    postgres_client(boost::asio::any_io_executor strand, const postgres_config& config,
                    std::weak_ptr<backend_sink> sink);

    void connect(completion_handler handler);
    void disconnect(completion_handler handler);
    void subscribe(std::string channel, completion_handler handler);
    void unsubscribe(std::string channel, completion_handler handler);
    void publish(std::string channel, std::string message, completion_handler handler);
    // History (`history=N`); reads run on the listener connection, in order.
    void history(std::string channel, history_query query, backend::history_handler handler);
    // A cancellation reached publish `id`: if it still waits, it is never sent.
    void cancel_publish(std::uint64_t id);
    void stop();

  private:
    using clock = std::chrono::steady_clock;
    struct notification {
        std::string channel;
        std::string message;
    };
    using pending_publish = publish_queue<notification>::entry;
    struct pending_read {
        std::string channel;
        history_query query;
        backend::history_handler handler;
    };
    struct read_result {
        boost::system::error_code ec;
        std::vector<event> events;
    };

    boost::asio::awaitable<void> open_connections() override;
    void on_connected() override;
    void close_connections() override;
    boost::asio::awaitable<void> run_listener(std::uint64_t generation,
                                              std::shared_ptr<pg_connection> connection);
    boost::asio::awaitable<void> run_publisher(std::uint64_t generation,
                                               std::shared_ptr<pg_connection> connection);
    boost::asio::awaitable<void> deliver_notifications(pg_connection& connection);
    boost::asio::awaitable<void> deliver(pg_connection& connection,
                                         std::vector<pg_notification> notifications);
    // Stores `p` in the payload table and notifies a reference to it.
    boost::asio::awaitable<void> send_large(pg_connection& connection, const pending_publish& p);
    void connection_lost(std::uint64_t generation, boost::system::error_code ec);

    // ---- history (postgres_history.cpp) ----
    bool keeps_history() const noexcept { return config_.history > 0; }
    boost::asio::awaitable<void> create_history_table(pg_connection& connection);
    // The statements of one batch of publishes (from the first waiting); how many.
    std::size_t history_batch(std::vector<pg_statement>& statements);
    // After a LISTEN: where the channel's history ends, from where it is delivered.
    boost::asio::awaitable<void> note_last_position(pg_connection& connection, std::string channel);
    // After a reconnect: every channel reads what it missed.
    boost::asio::awaitable<void> recover_history(std::uint64_t generation,
                                                 pg_connection& connection);
    boost::asio::awaitable<void> run_read(std::uint64_t generation, pg_connection& connection);
    boost::asio::awaitable<read_result> read_history(pg_connection& connection, std::string channel,
                                                     history_query query);
    boost::asio::awaitable<void> deliver_kept(pg_connection& connection, std::string channel,
                                              history_notification kept);
    // Delivers the rows of `channel` after the last position delivered, up to `upto`;
    // `must_reach`: `upto` was published, so rows missing up to it are a gap.
    boost::asio::awaitable<void> fill(pg_connection& connection, std::string channel,
                                      std::uint64_t upto, bool must_reach);
    void fail_reads(boost::system::error_code ec);
    // The coroutines of `generation` may go on: it is the connection in use. Once it is
    // not, what they were doing has been completed for them.
    bool current(std::uint64_t generation) const { return generation == generation_ && ready_; }
    void complete(std::vector<listener_queue<completion_handler>::completion> done);
    void arm_publish_deadline();
    void on_publish_deadline();
    void fail_everything(boost::system::error_code ec);

    const postgres_config config_;

    std::shared_ptr<pg_connection> listener_;
    std::shared_ptr<pg_connection> publisher_;

    // LISTEN/UNLISTEN commands, and the channels listened to (restored after a
    // reconnect).
    listener_queue<completion_handler> listeners_;

    publish_queue<notification> publishes_;
    clock::time_point in_flight_since_;  // when those in flight were sent
    boost::asio::steady_timer publish_wake_;
    boost::asio::steady_timer publish_deadline_;
    bool publish_deadline_armed_ = false;
    bool table_ready_ = false;
    bool listening_ = false;  // every channel is listened to on this connection
    unsigned large_since_cleanup_ = 0;

    std::optional<history_statements> history_sql_;  // for this connection's table name
    std::list<pending_read> reads_;                  // a node container: see completion.hpp
    // Per channel listened to with history: the last position delivered.
    std::unordered_map<std::string, std::uint64_t> delivered_;
};

}  // namespace broadcaster::detail
