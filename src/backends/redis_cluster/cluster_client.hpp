#pragma once

#include "../reconnect_backoff.hpp"
#include "../redis/redis_connection.hpp"
#include "../tls/loaded_openssl.hpp"
#include "cluster_config.hpp"
#include "slot_map.hpp"

#include <broadcaster/backend.hpp>

#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>

namespace broadcaster::detail {

// The Redis Cluster backend's state, shared with its pending operations so that it
// outlives the backend object until they finish. Everything runs on the backend's
// strand.
//
// Per master ("shard"): one publish link (pipelined SPUBLISH) and, while channels of
// its slots are subscribed, one subscribe link (SSUBSCRIBE/SUNSUBSCRIBE, incoming
// smessages). Channels are routed by hash slot through the slot map (CLUSTER SLOTS),
// which a topology loop reads again whenever the cluster says it changed: a -MOVED,
// -ASK, -TRYAGAIN or -CLUSTERDOWN reply, a server-pushed sunsubscribe (the slot
// moved), a link lost (a master failed). The loop then re-subscribes displaced
// channels on their new owner and re-sends held publishes, backing off between
// attempts while the cluster has not settled.
//
// Guarantees kept across topology changes: per channel, publishes reach the broker in
// the order they were made (a publish redirected by -MOVED is re-sent before any later
// one of its slot); a publish whose fate is unknown (its link died after it was sent)
// fails with connection_lost instead of being sent twice; a channel is read from one
// link at a time, so no message is delivered twice; publishes of a slot whose
// channels are being re-subscribed wait for it, so this instance's own subscribers do
// not miss them. Publishes wait at most publish_timeout.
class cluster_client : public std::enable_shared_from_this<cluster_client> {
  public:
    using completion_handler = backend::completion_handler;

    cluster_client(boost::asio::any_io_executor strand, const cluster_config& config,
                   std::shared_ptr<boost::asio::ssl::context> tls,
                   std::weak_ptr<backend_sink> sink);
    cluster_client(const cluster_client&) = delete;
    cluster_client& operator=(const cluster_client&) = delete;

    // Reads the slot map from the first seed (or any node) that answers; completes
    // with the last error if none does.
    void connect(completion_handler handler);
    void disconnect(completion_handler handler);
    void subscribe(std::string channel, completion_handler handler);
    void unsubscribe(std::string channel, completion_handler handler);
    // A publish can be cancelled through its handler's cancellation slot while it
    // waits (not yet written): it is never sent and completes with operation_aborted.
    void publish(std::string channel, std::string message, completion_handler handler);
    // Closes everything; pending operations fail with operation_aborted.
    void stop();

  private:
    using clock = std::chrono::steady_clock;

    struct publish_entry {
        std::uint64_t seq;  // publish order, kept when the entry is re-sent
        std::uint16_t slot;
        std::string channel;
        std::string message;
        clock::time_point deadline;
        completion_handler handler;
        std::string ask_target;  // -ASK: send once to this node, after ASKING
        bool asking = false;     // sent with ASKING: its first reply is ASKING's
        std::size_t bytes = 0;   // of its commands in the link's `queued`
    };
    using entry_ptr = std::unique_ptr<publish_entry>;

    enum class command_kind { subscribe, unsubscribe };
    struct sent_command {
        command_kind kind;
        std::string channel;
        completion_handler handler;  // empty for a restore or a move
    };

    // A connection to one master, for publishing or for subscriptions.
    struct link {
        enum class status { idle, opening, open, failed };
        link(std::string address, redis_config config, bool subscriber)
            : address(std::move(address)), config(std::move(config)), subscriber(subscriber) {}

        const std::string address;
        const redis_config config;  // outlives `connection`, which refers to it
        const bool subscriber;
        std::shared_ptr<redis_connection> connection;
        status state = status::idle;
        std::uint64_t id = 0;   // per connection: callbacks of an older one see a change
        bool retrying = false;  // failed, not reopened since: the cluster is degraded
        std::string queued;     // commands waiting for the write in progress
        std::string writing;
        bool write_active = false;
        // Publish link: entries in order; the first `written` were handed to a write.
        std::deque<entry_ptr> entries;
        std::size_t written = 0;
        bool draining = false;  // a redirect came: new publishes wait until it is empty
        // Subscribe link: each command gets one reply, in order.
        std::deque<sent_command> sent;
        std::size_t channels = 0;  // channels placed on it
    };
    using link_ptr = std::shared_ptr<link>;

    struct channel_record {
        std::uint16_t slot;
        std::string node;  // the subscribe link it is on; empty: displaced
        bool confirmed = false;
        bool restoring = false;      // was confirmed, then displaced: its slot's publishes wait
        completion_handler waiter;   // a subscribe not confirmed yet, while displaced
        clock::time_point deadline;  // for `waiter`
    };

    boost::asio::awaitable<void> first_connect(std::shared_ptr<cluster_client> self);
    boost::asio::awaitable<void> topology_loop(std::shared_ptr<cluster_client> self);
    // Reads CLUSTER SLOTS from the hint, the known masters, then the seeds.
    boost::asio::awaitable<boost::system::error_code> refresh_map();
    boost::asio::awaitable<void> read_map(std::string address);
    void request_refresh(const std::string& hint = {});
    void reconcile();

    link_ptr& link_to(const std::string& address, bool subscriber);
    void open_link(const link_ptr& l);
    boost::asio::awaitable<void> run_link(std::shared_ptr<cluster_client> self, link_ptr l,
                                          std::uint64_t id);
    void link_failed(const link_ptr& l, boost::system::error_code ec);
    void flush(const link_ptr& l);
    void close_link(const link_ptr& l);

    bool held() const noexcept { return moved_pending_ || draining_links_ > 0; }
    bool try_route(entry_ptr& entry);
    void park(entry_ptr entry);
    void dispatch_parked();
    void handle_publish_reply(const link_ptr& l, const redisReply& reply);
    void cancel_publish(std::uint64_t seq);
    void complete_publish(publish_entry& entry, boost::system::error_code ec);
    void drained(link& l);

    void place(const std::string& channel, channel_record& record, completion_handler handler);
    void displace(channel_record& record, link* from);
    void handle_subscriber_reply(const link_ptr& l, const redisReply& reply);
    void confirm(const link_ptr& l, sent_command command, const redisReply& reply);
    void maybe_close_subscriber(const std::string& address);

    void arm_deadline();
    void on_deadline();
    void complete(completion_handler& handler, boost::system::error_code ec);

    void mark_degraded(boost::system::error_code ec);
    void check_health();
    void report(connection_state state, boost::system::error_code ec);

    const boost::asio::any_io_executor strand_;
    const cluster_config config_;
    const std::shared_ptr<boost::asio::ssl::context> tls_;
    const std::weak_ptr<backend_sink> sink_;

    completion_handler connect_handler_;
    bool connected_ = false;
    bool stopping_ = false;

    std::optional<slot_map> map_;
    std::unordered_map<std::string, link_ptr> publishers_;
    std::unordered_map<std::string, link_ptr> subscribers_;
    std::shared_ptr<redis_connection> control_;  // the one reading CLUSTER SLOTS

    // Topology loop.
    bool dirty_ = false;
    std::string refresh_hint_;
    boost::asio::steady_timer signal_;  // cancelled to wake the loop
    boost::asio::steady_timer backoff_timer_;
    reconnect_backoff backoff_;
    bool moved_pending_ = false;  // a redirect came: hold publishes until the map is read
    std::uint64_t moved_epoch_ = 0;
    std::size_t draining_links_ = 0;
    std::size_t retrying_links_ = 0;
    bool degraded_ = false;  // "reconnecting" reported, "connected" not yet

    // Publishes not on a link (held, or no link to send them on), by seq.
    std::map<std::uint64_t, entry_ptr> parked_;
    std::unordered_map<std::uint16_t, std::size_t> parked_slots_;
    std::uint64_t next_seq_ = 0;
    boost::asio::steady_timer deadline_timer_;
    std::optional<clock::time_point> armed_at_;

    std::unordered_map<std::string, channel_record> channels_;
    std::unordered_set<std::string> displaced_;
    std::unordered_map<std::uint16_t, std::size_t> restoring_slots_;
};

}  // namespace broadcaster::detail
