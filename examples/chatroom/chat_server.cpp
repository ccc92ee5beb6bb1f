#include "chat_server.hpp"

#include "room.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <sstream>
#include <stdexcept>

namespace chat {

namespace asio = boost::asio;
using asio::use_awaitable;
using tcp = asio::ip::tcp;

namespace {
// The room's fan-out takes in one turn of the server what its clients published in the
// turn before: each client's reader takes at most 64 KiB of input per turn.
constexpr std::size_t room_queue_messages = std::size_t{1} << 20;
constexpr std::size_t room_queue_bytes = std::size_t{256} << 20;
}  // namespace

void log_connection_failure(const std::exception_ptr& e) {
    try {
        std::rethrow_exception(e);
    } catch (const std::exception& error) {
        log("connection dropped: " + std::string(error.what()));
    } catch (...) {
        log("connection dropped: unknown exception");
    }
}

server::server(asio::io_context& io, config cfg)
    : io_(io),
      config_(std::move(cfg)),
      broadcast_(io, config_.broadcast_url),
      room_(config_.threads == 1
                ? std::make_shared<chat::room>(broadcast_, room_queue_messages, room_queue_bytes)
                : nullptr),
      accept_strand_(asio::make_strand(io)),
      acceptor_(accept_strand_),
      accept_backoff_(accept_strand_),
      idle_sweep_(io) {}

asio::awaitable<void> server::start() {
    broadcast_.on_state_change([url = broadcast_.url()](broadcaster::connection_state state,
                                                        boost::system::error_code ec) {
        log("backend " + url + " " + std::string(broadcaster::to_string(state)) +
            (ec ? " (" + ec.message() + ")" : ""));
    });
    co_await broadcast_.async_connect(use_awaitable);
    co_await resolve_history();
    // On the accept strand, where shutdown closes the acceptor: after a shutdown that
    // came first (a signal while connecting), it does not open at all.
    co_await asio::co_spawn(accept_strand_, listen(), use_awaitable);
}

// Asks the backend whether it keeps history: --history needs it, and without the
// option a backend that keeps history gives joining clients the last default_history.
asio::awaitable<void> server::resolve_history() {
    if (config_.history == std::size_t{0}) {
        co_return;
    }
    auto [ec, events] =
        co_await broadcast_.async_history(room_channel, 1, asio::as_tuple(use_awaitable));
    if (ec == broadcaster::error::history_not_supported && !config_.history) {
        co_return;  // a backend without history: live messages only
    }
    if (ec == broadcaster::error::history_not_supported) {
        throw std::runtime_error(
            "--history needs a backend that keeps history (memory://?history=N, "
            "redis-stream://, ...); this one does not");
    }
    if (ec) {
        throw boost::system::system_error(ec, "reading the room's history");
    }
    // The history waits in the client's send queue: without --history, the default
    // stays within it, counted in messages and in largest messages.
    const auto largest_fit =
        config_.client_queue_bytes / std::max<std::size_t>(config_.max_message_bytes, 1);
    const auto fitting_default =
        std::min({default_history, config_.client_queue_messages / 2, largest_fit});
    join_history_ = config_.history.value_or(fitting_default);
    resume_limit_ = std::max<std::size_t>({join_history_, fitting_default, 1});
}

asio::awaitable<void> server::listen() {
    if (stopping_) {
        co_return;
    }
    const tcp::endpoint endpoint(asio::ip::make_address(config_.host), config_.port);
    acceptor_.open(endpoint.protocol());
    acceptor_.set_option(tcp::acceptor::reuse_address(true));
    acceptor_.bind(endpoint);
    acceptor_.listen();
    bound_port_ = acceptor_.local_endpoint().port();
    asio::co_spawn(accept_strand_, accept_loop(), asio::detached);
    asio::co_spawn(idle_sweep_.get_executor(), sweep_idle_sessions(), asio::detached);
}

// Checks every session a few times per idle timeout: a silent client is pinged within
// a tenth of the timeout after half of it, and dropped within a tenth after all of it.
asio::awaitable<void> server::sweep_idle_sessions() {
    const auto period = std::max<std::chrono::steady_clock::duration>(
        config_.idle_timeout / 10, std::chrono::milliseconds(100));
    while (!stopping_) {
        idle_sweep_.expires_after(period);
        auto [ec] = co_await idle_sweep_.async_wait(asio::as_tuple(use_awaitable));
        if (ec || stopping_) {
            co_return;
        }
        for (const auto& session : live_sessions()) {
            session->check_idle();
        }
    }
}

std::vector<std::shared_ptr<live_session>> server::live_sessions() const {
    std::vector<std::shared_ptr<live_session>> live;
    std::lock_guard lock(sessions_mutex_);
    for (auto* session = sessions_; session != nullptr; session = session->next_) {
        if (auto shared = session->share()) {
            live.push_back(std::move(shared));
        }
    }
    return live;
}

void server::stop_accepting() {
    boost::system::error_code ignored;
    acceptor_.close(ignored);
    accept_backoff_.cancel();
}

asio::awaitable<void> server::accept_loop() {
    using namespace std::chrono_literals;
    // Out of file descriptors (EMFILE, ENFILE) or kernel memory, the connection stays
    // queued and every accept fails at once: retrying at once would spin. Pause,
    // serving the clients we have, and retry soon (the pause doubles up to 100 ms).
    constexpr auto first_pause = 5ms;
    constexpr auto longest_pause = 100ms;
    auto pause = std::chrono::milliseconds(first_pause);
    std::uint64_t failures = 0;  // in a row: one episode, logged once
    for (;;) {
        // With several threads each connection gets its own strand. With one, the
        // io_context alone serializes: a strand would cost every handler a hop.
        const auto executor = config_.threads > 1 ? asio::any_io_executor(asio::make_strand(io_))
                                                  : asio::any_io_executor(io_.get_executor());
        auto [ec, socket] =
            co_await acceptor_.async_accept(executor, asio::as_tuple(use_awaitable));
        if (!acceptor_.is_open()) {
            co_return;  // shutting down
        }
        if (ec == asio::error::connection_aborted) {
            continue;  // that client gave up while queued
        }
        if (ec) {
            if (failures++ == 0) {
                log("cannot accept connections: " + ec.message() +
                    "; serving the connected clients and retrying");
            }
            metrics_.accept_failures.fetch_add(1, std::memory_order_relaxed);
            accept_backoff_.expires_after(pause);
            co_await accept_backoff_.async_wait(asio::as_tuple(use_awaitable));
            pause = std::min<std::chrono::milliseconds>(pause * 2, longest_pause);
            continue;
        }
        if (failures > 0) {
            log("accepting connections again (after " + std::to_string(failures) +
                " failed attempts)");
            failures = 0;
            pause = first_pause;
        }
        // Chat messages are small and wanted now: no Nagle delay (the writer already
        // sends everything queued for a client in one write).
        boost::system::error_code ignored;
        socket.set_option(tcp::no_delay(true), ignored);
        // One connection's failure (an exception in its coroutine) ends only that
        // connection, and says so.
        asio::co_spawn(socket.get_executor(), serve_connection(*this, std::move(socket)),
                       [](std::exception_ptr e) {
                           if (e) {
                               log_connection_failure(e);
                           }
                       });
    }
}

asio::awaitable<void> server::shutdown() {
    stopping_ = true;
    asio::dispatch(accept_strand_, [this] { stop_accepting(); });
    asio::post(idle_sweep_.get_executor(), [this] { idle_sweep_.cancel(); });
    for (const auto& session : live_sessions()) {
        session->close_going_away();
    }
    // Give the clients a moment to complete the closing handshake.
    asio::steady_timer timer(io_);
    for (int i = 0; i < 200; ++i) {
        {
            std::lock_guard lock(sessions_mutex_);
            if (sessions_ == nullptr) {
                break;
            }
        }
        timer.expires_after(std::chrono::milliseconds(10));
        co_await timer.async_wait(use_awaitable);
    }
    co_await broadcast_.async_disconnect(asio::as_tuple(use_awaitable));
}

server::~server() {
    if (room_) {
        room_->close();
    }
    std::lock_guard lock(sessions_mutex_);
    for (auto* session = sessions_; session != nullptr;) {
        auto* next = session->next_;
        session->previous_ = session->next_ = nullptr;
        session->listed_.store(false, std::memory_order_release);
        session = next;
    }
    sessions_ = nullptr;
}

void server::add_session(live_session& session) {
    std::lock_guard lock(sessions_mutex_);
    session.listed_.store(true, std::memory_order_release);
    session.next_ = sessions_;
    if (sessions_ != nullptr) {
        sessions_->previous_ = &session;
    }
    sessions_ = &session;
}

void server::remove_session(live_session& session) {
    std::lock_guard lock(sessions_mutex_);
    if (!session.listed_.load(std::memory_order_relaxed)) {
        return;
    }
    session.listed_.store(false, std::memory_order_release);
    (session.previous_ != nullptr ? session.previous_->next_ : sessions_) = session.next_;
    if (session.next_ != nullptr) {
        session.next_->previous_ = session.previous_;
    }
    session.previous_ = session.next_ = nullptr;
}

std::string server::metrics_text() const {
    const auto s = broadcast_.stats();
    std::ostringstream out;
    const auto metric = [&](const char* name, const char* type, const char* help,
                            std::uint64_t value) {
        out << "# HELP " << name << " " << help << "\n# TYPE " << name << " " << type << "\n"
            << name << " " << value << "\n";
    };
    metric("chat_clients", "gauge", "Connected WebSocket clients.", metrics_.clients.load());
    metric("chat_connections_total", "counter", "WebSocket clients ever connected.",
           metrics_.connections_total.load());
    metric("chat_messages_in_total", "counter", "Messages received from clients and published.",
           metrics_.messages_in.load());
    metric("chat_messages_out_total", "counter", "Messages sent to clients.",
           metrics_.messages_out.load());
    metric("chat_batches_out_total", "counter",
           "Writes to clients, each of one or more queued messages.", metrics_.batches_out.load());
    metric("chat_slow_client_disconnects_total", "counter",
           "Clients disconnected because their send queue overflowed.",
           metrics_.slow_client_disconnects.load());
    metric("chat_oversized_frames_total", "counter", "Clients closed for a too large message.",
           metrics_.oversized_frames.load());
    metric("chat_binary_frames_total", "counter", "Clients closed for sending binary data.",
           metrics_.binary_frames.load());
    metric("chat_publish_failures_total", "counter", "Messages the backend refused.",
           metrics_.publish_failures.load());
    metric("chat_bad_requests_total", "counter", "Malformed HTTP requests.",
           metrics_.bad_requests.load());
    metric("chat_forbidden_origins_total", "counter",
           "WebSocket upgrades refused (403) for their Origin.", metrics_.forbidden_origins.load());
    metric("chat_accept_failures_total", "counter",
           "Failed accepts (out of file descriptors or memory), each followed by a pause.",
           metrics_.accept_failures.load());
    metric("broadcast_published_total", "counter", "Messages the backend accepted.", s.published);
    metric("broadcast_received_total", "counter", "Events received from the backend.", s.received);
    metric("broadcast_delivered_total", "counter", "Events queued to subscribers.", s.delivered);
    metric("broadcast_dropped_total", "counter", "Events dropped by full subscriber queues.",
           s.dropped);
    metric("broadcast_active_channels", "gauge", "Channels with local subscribers.",
           s.active_channels);
    metric("broadcast_active_subscribers", "gauge", "Local subscribers.", s.active_subscribers);
    metric("broadcast_reconnects_total", "counter", "Backend reconnects.", s.reconnects);
    return out.str();
}

std::string server::health_json(bool& healthy) const {
    const auto state = broadcast_.state();
    healthy = state == broadcaster::connection_state::connected && !stopping_;
    return std::string("{\"status\":\"") + (healthy ? "ok" : "unavailable") + "\",\"backend\":\"" +
           std::string(broadcaster::to_string(state)) + "\"}\n";
}

}  // namespace chat
