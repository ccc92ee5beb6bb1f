#pragma once

#include "../kafka/blocking_service.hpp"
#include "nats_api.hpp"
#include "nats_config.hpp"
#include "nats_delivery.hpp"
#include "nats_jetstream.hpp"
#include "nats_link.hpp"

#include <broadcaster/backend.hpp>

#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

namespace broadcaster::detail {

// The NATS backend's state, shared with its pending operations; everything runs on
// `strand_`. nats.c is driven through its event-loop interface: the strand watches a
// duplicate of nats.c's socket with Asio and calls natsConnection_ProcessReadEvent /
// ProcessWriteEvent, so there is no read or flush thread per connection and nothing
// blocks the strand. Only natsConnection_Connect (a blocking handshake) and the
// destruction of the connection run on the io_context's blocking_service threads.
// nats.c's own threads (reconnect, timers, message delivery) only post to the strand
// through a nats_link.
//
// Confirmation: the server handles a connection's commands in order, so a marker
// message published to this connection's own inbox and received back proves that every
// SUB and PUB sent before it was processed (what a PING/PONG flush proves, without a
// blocking natsConnection_Flush). Subscribes and publishes complete when their marker
// comes back.
//
// History (`?jetstream=STREAM`, see nats_jetstream.hpp): a publish goes to the channel's
// stored subject with a reply subject of our own, and completes with the stream's
// acknowledgement. Subscribers listen to the republished subject, whose messages carry
// their stream sequence and the previous one of their subject: a channel delivers a
// message whose previous one it delivered, and reads what it missed from the stream
// first otherwise (a hole, a reconnect), dropping what it already delivered.
class nats_client : public std::enable_shared_from_this<nats_client> {
  public:
    using completion_handler = backend::completion_handler;

    nats_client(boost::asio::any_io_executor strand, nats_config config,
                std::weak_ptr<backend_sink> sink);
    ~nats_client();

    void connect(completion_handler handler);
    void disconnect(completion_handler handler);
    // `subject`: a channel or a pattern (valid_nats_pattern); never both of one name.
    void subscribe(std::string subject, completion_handler handler);
    void unsubscribe(const std::string& subject, completion_handler handler);
    void publish(std::string subject, std::string message, completion_handler handler);
    // History on only.
    void history(std::string channel, history_query query, backend::history_handler handler);
    // Closes everything; pending operations fail with error::not_connected. `then`
    // completes once nats.c's connection is destroyed.
    void stop(completion_handler then = {});

    // From nats.c's threads, through the link.
    void on_attached(int fd);
    void on_want_read(bool add);
    void on_want_write(bool add);
    void on_detached();
    void on_reconnected();
    void on_closed();
    // Messages nats.c gave the link for this client.
    void on_deliveries();
    // nats.c began dropping messages of the subscription to `subscribed` (a NATS
    // subject): its pending limits were exceeded while its delivery thread was behind.
    void on_messages_dropped(std::string subscribed, std::int64_t subscription_id);

  private:
    using clock = std::chrono::steady_clock;
    // An operation waiting for a marker: a subscribe, a publish, or (no handler) the
    // confirmation that every subscription is back after a reconnect.
    struct waiter {
        bool is_publish = false;
        std::string subject;  // of a subscribe
        completion_handler handler;
        clock::time_point deadline;
    };
    struct marker {
        std::uint64_t seq = 0;
        std::vector<waiter> waiters;
    };
    struct held_publish {
        std::string subject;
        std::string message;
        completion_handler handler;
        clock::time_point deadline;
    };

    void connected(natsConnection* nc, completion_handler handler);
    bool jetstream() const noexcept { return !config_.stream.empty(); }
    // History: reads a channel's newest position (`baseline`, for a subscribe), or what
    // followed its last delivered one, off the strand; then read_done on the strand.
    void start_read(const std::string& channel);
    // Reads what nats.c dropped of `channel` from the stream, now or after the read or
    // subscribe in flight.
    void read_dropped(const std::string& channel);
    void read_done(const std::string& channel, std::uint64_t generation, js_read result);
    void baseline_done(std::uint64_t id, js_last result);
    void on_live(const std::string& channel, js_message m, std::uint64_t previous);
    void release_held(const std::string& channel);
    void on_ack(const std::string& subject, const std::string& data);
    // Runs `job(js)` on the blocking service with a JetStream context of its own, then
    // `done(client, result)` on the strand if the client is still there.
    template <typename Job, typename Done>
    void run_blocking(Job job, Done done);
    void send_publish(const std::string& subject, const std::string& message,
                      completion_handler handler, clock::time_point deadline);
    void wait_for_marker(waiter w);
    void send_marker();
    void drop_subscription(const std::string& subject);
    void marker_returned(std::uint64_t seq);
    // A message on `d.subject`, for the subscription to `d.subscribed` (the same subject,
    // or a pattern that matches it).
    void on_message(nats_delivery d);
    // Ends the subscribers of `subscribed` (a channel or a pattern) with history_gap.
    void report_gap(const std::string& subscribed);
    // Makes the expiry timer fire by `deadline` at the latest.
    void arm_expiry(clock::time_point deadline);
    void expire();
    void read_ready();
    void write_ready();
    // Closes our duplicate of nats.c's socket; waits started on it come to nothing.
    void close_socket();
    void watch_read();
    // The loss of the connection, as nats.c's event loop calls show it.
    void connection_lost();
    // The server's max_payload, asked once per connection: asking takes nats.c's lock.
    void read_max_payload();
    void watch_write();
    std::size_t readable_bytes();
    bool socket_ready(short events);
    void report(connection_state state, boost::system::error_code ec);
    void complete(completion_handler handler, boost::system::error_code ec);

    const boost::asio::any_io_executor strand_;
    const nats_config config_;
    const std::weak_ptr<backend_sink> sink_;
    blocking_service& blocking_;
    std::shared_ptr<nats_link> link_;

    natsConnection* nc_ = nullptr;
    natsSubscription* marker_sub_ = nullptr;
    std::string inbox_;
    std::size_t max_payload_ = 0;  // the server's; 0 until connected
    bool stopped_ = false;
    bool connected_ = false;     // nats.c is connected, as far as the strand knows
    bool reconnecting_ = false;  // "reconnecting" reported, "connected" not yet

    // A duplicate of nats.c's socket (which nats.c closes and replaces on reconnect).
    boost::asio::posix::stream_descriptor socket_;
    std::uint64_t socket_generation_ = 0;
    bool want_read_ = false;
    bool want_write_ = false;
    bool read_armed_ = false;
    bool read_paused_ = false;  // the link's queue is full: reading waits for the strand
    bool write_armed_ = false;

    struct subscription {
        natsSubscription* handle = nullptr;
        // nats.c's ID: a message or drop report for an earlier subscription to the same
        // subject (still queued when it was replaced) carries another one.
        std::int64_t id = 0;
    };
    // Whether `subscribed` is subscribed, by the subscription nats.c's `id` names.
    bool is_current(const std::string& subscribed, std::int64_t id) const;

    std::unordered_map<std::string, subscription> subs_;
    std::deque<held_publish> held_;  // published while disconnected, in order
    std::vector<waiter> unsent_;     // for the next marker
    bool marker_posted_ = false;
    std::deque<marker> markers_;  // sent, in order
    std::uint64_t next_marker_ = 0;
    boost::asio::steady_timer expiry_;
    bool expiry_armed_ = false;
    std::uint64_t expiry_generation_ = 0;

    // ---- history (jetstream() only) ----
    struct held_live {
        js_message message;
        std::uint64_t previous = 0;
    };
    struct channel_state {
        std::uint64_t last = 0;         // the last position delivered (or newest at subscribe)
        bool subscribing = false;       // its subscribe waits for the newest position
        bool reading = false;           // a read is in flight: live messages wait in `held`
        bool dropped = false;           // nats.c dropped some during a read: read again
        std::int64_t dropped_seen = 0;  // nats.c's drop count for it, as last seen
        std::uint64_t generation = 0;
        std::vector<held_live> held;
    };
    struct pending_subscribe {
        std::string channel;
        completion_handler handler;
    };
    struct pending_ack {
        completion_handler handler;
        clock::time_point deadline;
    };
    std::unordered_map<std::string, channel_state> channels_;  // subscribed channels
    // Node containers: completion handlers must never be move-assigned.
    std::map<std::uint64_t, pending_subscribe> subscribing_;  // waiting for their baseline
    std::map<std::uint64_t, backend::history_handler> history_;
    std::map<std::uint64_t, pending_ack> acks_;
    std::uint64_t next_id_ = 0;
    std::optional<completion_handler> connecting_;  // until the stream is there
    natsSubscription* ack_sub_ = nullptr;
    std::string ack_prefix_;  // inbox_ + ".": an ack's subject is this and the publish's id
};

}  // namespace broadcaster::detail
