#pragma once

#include "../publish_queue.hpp"
#include "../supervised_client.hpp"
#include "listener_queue.hpp"
#include "pg_connection.hpp"
#include "postgres_config.hpp"

#include <broadcaster/backend.hpp>

#include <boost/asio/steady_timer.hpp>

namespace broadcaster::detail {

// Postgres channels are identifiers of at most 63 bytes: longer names map to a stable
// hash ("bc_" + 60 hex digits of SHA-256), on LISTEN and NOTIFY alike.
std::string postgres_channel(const std::string& channel);

// The Postgres backend's state, shared with its pending operations. Two connections:
// a listener (LISTEN/UNLISTEN, notifications) and a publisher (pg_notify), so a flood
// of publishes never delays notifications and each publisher's order is kept. The
// supervisor (supervised_client) reconnects both after a loss; every channel is then
// listened to again. Runs on the strand.
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
};

}  // namespace broadcaster::detail
