#include "chat_server.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <ctime>
#include <iostream>
#include <sstream>

namespace chat {

namespace asio = boost::asio;
using asio::use_awaitable;
using tcp = asio::ip::tcp;

void log(const std::string& line) {
    const auto now = std::time(nullptr);
    char stamp[32];
    std::strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&now));
    std::cerr << stamp << " broadcaster-chat: " << line << std::endl;
}

server::server(asio::io_context& io, config cfg)
    : io_(io), config_(std::move(cfg)), broadcast_(io, config_.broadcast_url), acceptor_(io) {}

asio::awaitable<void> server::start() {
    broadcast_.on_state_change([url = broadcast_.url()](broadcaster::connection_state state,
                                                        boost::system::error_code ec) {
        log("backend " + url + " " + std::string(broadcaster::to_string(state)) +
            (ec ? " (" + ec.message() + ")" : ""));
    });
    co_await broadcast_.async_connect(use_awaitable);

    const tcp::endpoint endpoint(asio::ip::make_address(config_.host), config_.port);
    acceptor_.open(endpoint.protocol());
    acceptor_.set_option(tcp::acceptor::reuse_address(true));
    acceptor_.bind(endpoint);
    acceptor_.listen();
    bound_port_ = acceptor_.local_endpoint().port();
    asio::co_spawn(io_, accept_loop(), asio::detached);
}

asio::awaitable<void> server::accept_loop() {
    for (;;) {
        // With several threads each connection gets its own strand. With one, the
        // io_context alone serializes: a strand would cost every handler a hop.
        const auto executor = config_.threads > 1 ? asio::any_io_executor(asio::make_strand(io_))
                                                  : asio::any_io_executor(io_.get_executor());
        auto [ec, socket] =
            co_await acceptor_.async_accept(executor, asio::as_tuple(use_awaitable));
        if (ec) {
            if (!acceptor_.is_open()) {
                co_return;  // shutting down
            }
            continue;  // e.g. too many open files: keep serving the others
        }
        // Chat messages are small and wanted now: no Nagle delay (the writer already
        // sends everything queued for a client in one write).
        boost::system::error_code ignored;
        socket.set_option(tcp::no_delay(true), ignored);
        asio::co_spawn(socket.get_executor(), serve_connection(*this, std::move(socket)),
                       asio::detached);
    }
}

asio::awaitable<void> server::shutdown() {
    stopping_ = true;
    boost::system::error_code ignored;
    acceptor_.close(ignored);
    std::vector<std::function<void()>> closers;
    {
        std::lock_guard lock(sessions_mutex_);
        for (auto& [id, close] : sessions_) {
            closers.push_back(close);
        }
    }
    for (auto& close : closers) {
        close();
    }
    // Give the clients a moment to complete the closing handshake.
    asio::steady_timer timer(io_);
    for (int i = 0; i < 200; ++i) {
        {
            std::lock_guard lock(sessions_mutex_);
            if (sessions_.empty()) {
                break;
            }
        }
        timer.expires_after(std::chrono::milliseconds(10));
        co_await timer.async_wait(use_awaitable);
    }
    co_await broadcast_.async_disconnect(asio::as_tuple(use_awaitable));
}

std::uint64_t server::add_session(std::function<void()> close_going_away) {
    std::lock_guard lock(sessions_mutex_);
    const auto id = ++next_session_;
    sessions_.emplace(id, std::move(close_going_away));
    return id;
}

void server::remove_session(std::uint64_t id) {
    std::lock_guard lock(sessions_mutex_);
    sessions_.erase(id);
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
