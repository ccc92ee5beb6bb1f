#pragma once

// The chat room's shared state: configuration, the broadcast every client uses, the
// listener, metrics, and the live sessions (to close them on shutdown).

#include "log.hpp"

#include <broadcaster/broadcaster.hpp>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>

#include <atomic>
#include <chrono>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace chat {

class room;

// The channel every client publishes to and receives from.
inline constexpr const char* room_channel = "chatroom";

struct config {
    std::string host = "127.0.0.1";
    unsigned short port = 8000;
    std::string broadcast_url = "memory://";
    int threads = 1;
    std::size_t max_message_bytes = 64 * 1024;            // larger text frames close with 1009
    std::size_t client_queue_messages = 65536;            // per-client send queue, messages
    std::size_t client_queue_bytes = 4 * 1024 * 1024;     // and bytes
    std::chrono::milliseconds slow_client_timeout{5000};  // socket taking nothing: dropped
    std::chrono::seconds handshake_timeout{10};           // HTTP request and WebSocket upgrade
    // A WebSocket client that sends nothing for half of this is pinged; for all of it,
    // dropped (Beast's suggested server timeouts, which the chat used before).
    std::chrono::seconds idle_timeout{300};
    // Origins (normalized, see normalize_origin) whose pages may open a WebSocket besides
    // the server's own; "*" for any.
    std::vector<std::string> allowed_origins;
    // Messages a joining client first receives from the room's history (--history);
    // unset: default_history if the backend keeps history, else none.
    std::optional<std::size_t> history;
};

inline constexpr std::size_t default_history = 50;

struct metrics {
    std::atomic<std::uint64_t> clients{0};
    std::atomic<std::uint64_t> connections_total{0};
    std::atomic<std::uint64_t> messages_in{0};
    std::atomic<std::uint64_t> messages_out{0};
    std::atomic<std::uint64_t> batches_out{0};  // writes of one or more messages
    std::atomic<std::uint64_t> slow_client_disconnects{0};
    std::atomic<std::uint64_t> oversized_frames{0};
    std::atomic<std::uint64_t> binary_frames{0};
    std::atomic<std::uint64_t> publish_failures{0};
    std::atomic<std::uint64_t> bad_requests{0};
    std::atomic<std::uint64_t> forbidden_origins{0};
    std::atomic<std::uint64_t> accept_failures{0};  // each followed by a pause
};

// What the server asks of a live WebSocket session. Either may be called from any
// thread: the session moves to its own executor.
class live_session {
  public:
    virtual ~live_session() = default;
    // Closes with 1001 (going away): the server shuts down.
    virtual void close_going_away() = 0;
    // Pings a client silent for half the idle timeout; drops one silent for all of it.
    virtual void check_idle() = 0;
    // The session, shared; null once it is being destroyed.
    virtual std::shared_ptr<live_session> share() = 0;

  protected:
    // In the server's list. A session that outlives its server (destroyed with the
    // io_context, after the server) is not: the server's destructor unlists them all.
    bool listed() const noexcept { return listed_.load(std::memory_order_acquire); }

  private:
    friend class server;
    // The server's list of live sessions runs through them: no allocation per client.
    live_session* previous_ = nullptr;
    live_session* next_ = nullptr;
    std::atomic<bool> listed_{false};
};

class server {
  public:
    server(boost::asio::io_context& io, config cfg);
    ~server();

    // Connects the broadcast and starts listening. Throws on failure.
    boost::asio::awaitable<void> start();
    // Stops accepting, closes every WebSocket with 1001 (going away), disconnects the
    // broadcast, then calls `done`.
    boost::asio::awaitable<void> shutdown();

    const config& settings() const noexcept { return config_; }
    broadcaster::broadcast& broadcast() noexcept { return broadcast_; }
    chat::metrics& stats() noexcept { return metrics_; }
    unsigned short bound_port() const noexcept { return bound_port_; }
    bool stopping() const noexcept { return stopping_; }
    // The messages of history a joining client receives (config::history, resolved
    // against the backend by start()).
    std::size_t join_history() const noexcept { return join_history_; }
    // The most messages a client resuming with ?since= is given; further behind, it
    // gets a gap frame and the recent history (so a request reads at most this many).
    std::size_t resume_limit() const noexcept { return resume_limit_; }
    // The room's fan-out (room.hpp), with one thread; null with several.
    chat::room* fan_out() const noexcept { return room_.get(); }

    // Live WebSocket sessions register themselves: to be closed on shutdown, and checked
    // for idleness (one sweep for all of them, not a timer each).
    void add_session(live_session& session);
    // Idempotent; a session must be removed before it is destroyed.
    void remove_session(live_session& session);

    std::string metrics_text() const;
    std::string health_json(bool& healthy) const;

  private:
    boost::asio::awaitable<void> resolve_history();
    boost::asio::awaitable<void> listen();
    boost::asio::awaitable<void> accept_loop();
    boost::asio::awaitable<void> sweep_idle_sessions();
    std::vector<std::shared_ptr<live_session>> live_sessions() const;
    void stop_accepting();

    boost::asio::io_context& io_;
    const config config_;
    broadcaster::broadcast broadcast_;
    std::shared_ptr<chat::room> room_;
    // The acceptor, its backoff timer and shutdown meet on this strand.
    boost::asio::strand<boost::asio::io_context::executor_type> accept_strand_;
    boost::asio::ip::tcp::acceptor acceptor_;
    boost::asio::steady_timer accept_backoff_;
    boost::asio::steady_timer idle_sweep_;
    metrics metrics_;
    unsigned short bound_port_ = 0;
    std::size_t join_history_ = 0;
    std::size_t resume_limit_ = 1;
    std::atomic<bool> stopping_{false};

    mutable std::mutex sessions_mutex_;
    live_session* sessions_ = nullptr;  // the first of the list
};

// Serves one TCP connection: HTTP requests until it upgrades to a WebSocket.
boost::asio::awaitable<void> serve_connection(server& srv, boost::asio::ip::tcp::socket socket);

// Logs the exception that ended one connection's code (std::bad_alloc, say); only that
// connection is dropped.
void log_connection_failure(const std::exception_ptr& e);

// The chat page, embedded at build time.
extern const std::string_view page_html;

}  // namespace chat
