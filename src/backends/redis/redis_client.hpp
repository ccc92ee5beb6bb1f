#pragma once

#include "../publish_queue.hpp"
#include "../supervised_client.hpp"
#include "redis_config.hpp"
#include "redis_connection.hpp"

#include <broadcaster/backend.hpp>

#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>

#include <chrono>
#include <deque>
#include <unordered_map>
#include <unordered_set>

namespace broadcaster::detail {

// The Redis backend's state and its connections, shared with every pending
// operation so that it outlives the backend object until they finish. Two
// connections: one in subscribe mode for SUBSCRIBE/UNSUBSCRIBE and incoming
// messages, one for pipelined PUBLISH. The supervisor (supervised_client) reconnects
// both after a loss; every subscription is then restored. Everything runs on the
// backend's strand.
class redis_client : public supervised_client, public std::enable_shared_from_this<redis_client> {
  public:
    redis_client(boost::asio::any_io_executor strand, const redis_config& config,
                 std::shared_ptr<boost::asio::ssl::context> tls, std::weak_ptr<backend_sink> sink);

    void connect(completion_handler handler);
    void disconnect(completion_handler handler);
    void subscribe(std::string channel, completion_handler handler);
    void unsubscribe(std::string channel, completion_handler handler);
    void publish(std::string channel, std::string message, completion_handler handler);
    // A cancellation reached publish `id`: if it still waits, it is never sent.
    void cancel_publish(std::uint64_t id);
    // Closes everything; pending operations fail with operation_aborted.
    void stop();

    // For tests: entries kept per channel (wanted channels, waiting completions,
    // commands awaiting their reply); zero when nothing is subscribed or in flight.
    std::size_t channel_entries() const noexcept;

  private:
    using clock = std::chrono::steady_clock;
    // Commands waiting to be written on one connection, and the batch being written.
    struct outbox {
        std::string queued;
        std::string writing;
        bool active = false;
    };
    enum class command_kind { subscribe, unsubscribe };
    struct sent_command {
        command_kind kind;
        std::string channel;
        bool restore;  // re-issued after a reconnect
    };

    boost::asio::awaitable<void> open_connections() override;
    // Reads `connection`'s replies and hands each to `handle` until the connection of
    // `generation` is gone; an error ends that connection.
    boost::asio::awaitable<void> read_replies(std::uint64_t generation,
                                              std::shared_ptr<redis_connection> connection,
                                              void (redis_client::*handle)(const redisReply&));
    void handle_publish_reply(const redisReply& reply);
    void on_connected() override;
    void close_connections() override;
    void on_lost() override;
    void connection_lost(std::uint64_t generation, boost::system::error_code ec);

    // Every subscription is back after a (re)connect: publishes may go out again.
    void subscriptions_restored();
    void arm_restore_deadline();
    void flush_publishes();
    void flush_subscriber();
    // Writes all of `out.queued` on `connection`, then calls `then`; false if no write
    // was started (not connected, one in progress, or nothing queued).
    bool start_write(outbox& out, const std::shared_ptr<redis_connection>& connection,
                     void (redis_client::*then)());
    void send_subscriber_command(command_kind kind, const std::string& channel, bool restore);
    void handle_subscriber_reply(const redisReply& reply);
    void confirm(const sent_command& command, boost::system::error_code ec);

    void arm_publish_deadline();
    void on_publish_deadline();
    void fail_everything(boost::system::error_code ec);

    const redis_config config_;
    const std::shared_ptr<boost::asio::ssl::context> tls_;

    std::shared_ptr<redis_connection> publisher_;
    std::shared_ptr<redis_connection> subscriber_;

    // Publishes in order: those in flight were handed to the socket and await their
    // reply; the waiting ones are encoded, in order, in `publish_out_.queued` (the
    // payload is the size of each one's command there).
    publish_queue<std::size_t> publishes_;
    outbox publish_out_;
    boost::asio::steady_timer publish_deadline_;
    bool publish_deadline_armed_ = false;

    // Channels wanted at the broker (confirmed or not); restored after a reconnect.
    std::unordered_set<std::string> channels_;
    std::unordered_map<std::string, std::deque<completion_handler>> subscribe_waiters_;
    std::unordered_map<std::string, std::deque<completion_handler>> unsubscribe_waiters_;
    // Every SUBSCRIBE/UNSUBSCRIBE gets exactly one reply, in order.
    std::deque<sent_command> subscriber_sent_;
    outbox subscriber_out_;
    // Restoring SUBSCRIBEs not yet confirmed; publishes are held while it is not zero.
    std::size_t resubscriptions_pending_ = 0;
    // A restore not confirmed within the connect timeout fails the connection: Redis
    // stalled or lost the commands, and waiting longer would hold publishes for good.
    boost::asio::steady_timer restore_deadline_;
};

}  // namespace broadcaster::detail
