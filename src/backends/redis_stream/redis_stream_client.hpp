#pragma once

#include "../redis/redis_connection.hpp"
#include "../supervised_client.hpp"
#include "redis_stream_config.hpp"
#include "stream_id.hpp"

#include <broadcaster/backend.hpp>

#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <deque>
#include <map>
#include <set>

namespace broadcaster::detail {

// The `redis-stream://` backend's state and connections, shared with its pending work
// so it outlives the backend object until that finishes. One stream per channel.
// Two connections:
// - `commands_`: pipelined XADD (publish), subscribes (checking what reading the stream
//   needs, and where it ends), history queries and CLIENT UNBLOCK, each answered in
//   order;
// - `reader_`: one XREAD BLOCK over every subscribed stream at a time, from the last ID
//   delivered per channel. A changed channel set interrupts the blocked read (CLIENT
//   UNBLOCK from `commands_`) so the next read includes it.
// After a reconnect, every channel resumes from the last ID it delivered, by
// MULTI { XINFO STREAM; XRANGE (last + } steps on the reader connection: atomic, so a
// trimmed gap is seen (max-deleted-entry-id) and reported, never skipped. A read that
// returns a full batch catches up the same way. Everything runs on the backend's strand.
class redis_stream_client : public supervised_client,
                            public std::enable_shared_from_this<redis_stream_client> {
  public:
    redis_stream_client(boost::asio::any_io_executor strand, const redis_stream_config& config,
                        std::shared_ptr<boost::asio::ssl::context> tls,
                        std::weak_ptr<backend_sink> sink);

    void connect(completion_handler handler);
    void disconnect(completion_handler handler);
    void subscribe(std::string channel, completion_handler handler);
    void unsubscribe(std::string channel, completion_handler handler);
    void publish(std::string channel, std::string message, completion_handler handler);
    void history(std::string channel, history_query query, backend::history_handler handler);
    // Closes everything; pending operations fail with error::not_connected.
    void stop();

  private:
    using clock = std::chrono::steady_clock;
    enum class request_kind { publish, subscribe, history_last, history_after, unblock };
    // One command (or MULTI ... EXEC) on `commands_`, answered in order.
    struct request {
        explicit request(request_kind k) : kind(k) {}
        request_kind kind;
        std::string command;      // RESP-encoded
        std::size_t replies = 1;  // MULTI/EXEC: every reply but the last is skipped
        bool denied = false;      // -NOPERM among the skipped ones
        std::string channel;
        completion_handler handler;        // publish, subscribe
        backend::history_handler history;  // history_*
        std::optional<stream_id> after;    // history_after
        std::size_t limit = 0;             // history_*
        clock::time_point deadline;        // publish: while it waits to be sent
    };
    struct stream_state {
        stream_id last;  // the last entry delivered (or where the stream ended at subscribe)
    };

    boost::asio::awaitable<void> open_connections() override;
    void on_connected() override;
    void close_connections() override;
    void on_lost() override;
    void connection_lost(std::uint64_t generation, boost::system::error_code ec);

    // commands_
    void enqueue(request r);
    void flush();
    boost::asio::awaitable<void> read_command_replies(std::uint64_t generation,
                                                      std::shared_ptr<redis_connection> c);
    void answer(request& r, const redisReply& reply);
    void fail_request(request& r, boost::system::error_code ec);
    void arm_publish_deadline();
    void on_publish_deadline();

    // reader_
    boost::asio::awaitable<void> read_streams(std::uint64_t generation,
                                              std::shared_ptr<redis_connection> c);
    // The caller keeps `c` alive (see write_all).
    boost::asio::awaitable<void> catch_up(redis_connection& c);
    // After -NOPERM (`refused`: the command, then Redis's reply): ends the subscribers
    // of each stream Redis refuses to read alone, or of every stream if it refuses none
    // (the caller keeps `c` and `refused` alive).
    boost::asio::awaitable<void> refuse_denied(redis_connection& c, const std::string& refused);
    // Delivers the entries of `channel` after its last ID; returns how many it got.
    std::size_t deliver_entries(const std::string& channel, const redisReply& entries);
    std::string xread_command() const;
    std::string subscribe_command(const std::string& channel) const;
    std::string catch_up_command(const std::vector<std::string>& channels);
    std::string probe_command(const std::vector<std::string>& channels);
    void restart_read();
    void send_unblock();

    const redis_stream_config config_;
    const std::shared_ptr<boost::asio::ssl::context> tls_;
    std::shared_ptr<redis_connection> commands_;
    std::shared_ptr<redis_connection> reader_;
    long long reader_id_ = 0;  // CLIENT ID of reader_, for CLIENT UNBLOCK

    // Requests in order; the first `in_flight_` were written and await their replies.
    std::deque<request> requests_;
    std::size_t in_flight_ = 0;
    std::size_t replies_skipped_ = 0;  // of the front request's MULTI/QUEUED replies
    std::string writing_;
    bool write_active_ = false;
    boost::asio::steady_timer publish_deadline_;
    bool publish_deadline_armed_ = false;

    std::map<std::string, stream_state> streams_;  // subscribed channels
    std::set<std::string> behind_;                 // channels to catch up before the next XREAD
    std::uint64_t version_ = 0;                    // bumped when the channel set grows
    std::uint64_t reading_version_ = 0;
    bool xread_blocked_ = false;  // an XREAD is out, built from reading_version_
    bool unblock_in_flight_ = false;
    boost::asio::steady_timer idle_;  // the reader waits here with no channel
    boost::asio::steady_timer unblock_retry_;
};

}  // namespace broadcaster::detail
