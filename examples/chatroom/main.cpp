// broadcaster-chat: the chat room of the broadcaster library, as a WebSocket server.
//
// Every text message a client sends is published on channel "chatroom"; every client
// of every instance sharing the backend receives it. Run one instance on memory://,
// or several on one redis:// URL behind a load balancer:
//
//   broadcaster-chat                                  # http://127.0.0.1:8000/
//   broadcaster-chat --port 8001 --broadcast redis://127.0.0.1:6379
//   curl localhost:8000/healthz; curl localhost:8000/metrics

#include "chat_server.hpp"
#include "request_checks.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <CLI/CLI.hpp>

#include <atomic>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <thread>

namespace asio = boost::asio;

namespace {

constexpr int usage_error = 2;

// --allow-origin takes what a browser sends as Origin, or "*".
std::string check_origin(const std::string& value) {
    if (value == "*" || chat::normalize_origin(value)) {
        return {};
    }
    return "expected *, or an origin like https://chat.example.com or http://localhost:8000, "
           "got " +
           value;
}

std::string describe(const std::exception_ptr& e) {
    try {
        std::rethrow_exception(e);
    } catch (const boost::system::system_error& error) {
        return error.code().message();
    } catch (const std::exception& error) {
        return error.what();
    } catch (...) {
        return "unknown exception";
    }
}

}  // namespace

int main(int argc, char** argv) {
    chat::config config;
    if (const char* url = std::getenv("BROADCAST_URL")) {
        config.broadcast_url = url;
    }
    CLI::App app{"broadcaster-chat: a WebSocket chat room on any broadcaster backend"};
    app.add_option("--host", config.host, "Address to listen on")->capture_default_str();
    app.add_option("--port", config.port, "Port to listen on (0: any free port)")
        ->capture_default_str();
    app.add_option("--broadcast", config.broadcast_url,
                   "Backend URL (default: $BROADCAST_URL, else memory://)");
    app.add_option("--threads", config.threads, "I/O threads")
        ->capture_default_str()
        ->check(CLI::Range(1, 256));
    app.add_option("--max-message-bytes", config.max_message_bytes,
                   "Larger text messages close the client with 1009")
        ->capture_default_str()
        ->check(CLI::Range(std::size_t{1}, std::size_t{1} << 30));
    app.add_option("--client-queue-messages", config.client_queue_messages,
                   "Per-client send queue, in messages; a client whose queue overflows "
                   "is closed with 1008")
        ->capture_default_str();
    app.add_option("--client-queue-bytes", config.client_queue_bytes,
                   "Per-client send queue, in bytes")
        ->capture_default_str();
    double slow_client_seconds = config.slow_client_timeout.count() / 1000.0;
    app.add_option("--slow-client-timeout", slow_client_seconds,
                   "Seconds a client's socket may take nothing while the server has something "
                   "for it before the client is dropped")
        ->capture_default_str()
        ->check(CLI::Range(0.01, 3600.0));
    int handshake_seconds = static_cast<int>(config.handshake_timeout.count());
    app.add_option("--handshake-timeout", handshake_seconds,
                   "Seconds a client may take to send its HTTP request or WebSocket upgrade")
        ->capture_default_str()
        ->check(CLI::Range(1, 3600));
    int idle_seconds = static_cast<int>(config.idle_timeout.count());
    app.add_option("--idle-timeout", idle_seconds,
                   "Seconds a WebSocket client may send nothing: after half of them it is "
                   "pinged, after all of them dropped (a pong counts as something)")
        ->capture_default_str()
        ->check(CLI::Range(2, 86400));
    std::vector<std::string> allowed_origins;
    app.add_option("--allow-origin", allowed_origins,
                   "Also accept WebSockets from pages of this origin (repeatable; * for any). "
                   "By default only the server's own page (same origin) and clients that "
                   "send no Origin are accepted")
        ->check(CLI::Validator(check_origin, "ORIGIN"));
    std::size_t history = 0;
    app.add_option("--history", history,
                   "Messages of the room's history a joining client receives first (default: " +
                       std::to_string(chat::default_history) +
                       " when the backend keeps history, else 0)")
        ->check(CLI::Range(std::size_t{0}, std::size_t{100000}));
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        return app.exit(e) == 0 ? 0 : usage_error;
    }
    if (config.max_message_bytes > config.client_queue_bytes) {
        std::cerr << "--max-message-bytes: must not exceed --client-queue-bytes (" +
                         std::to_string(config.client_queue_bytes) +
                         "): a message that big could never wait in a client's send queue\n";
        return usage_error;
    }
    if (app.count("--history") > 0) {
        if (history >= config.client_queue_messages) {
            std::cerr << "--history: must be below --client-queue-messages (" +
                             std::to_string(config.client_queue_messages) +
                             "): the history waits in the client's send queue\n";
            return usage_error;
        }
        if (history > config.client_queue_bytes / config.max_message_bytes) {
            std::cerr << "--history: " + std::to_string(history) +
                             " messages of --max-message-bytes do not fit in "
                             "--client-queue-bytes (" +
                             std::to_string(config.client_queue_bytes) +
                             "): a client joining would overflow its send queue\n";
            return usage_error;
        }
        config.history = history;
    }
    config.handshake_timeout = std::chrono::seconds(handshake_seconds);
    config.idle_timeout = std::chrono::seconds(idle_seconds);
    config.slow_client_timeout =
        std::chrono::milliseconds(static_cast<long long>(slow_client_seconds * 1000));
    for (const auto& origin : allowed_origins) {
        config.allowed_origins.push_back(origin == "*" ? origin : *chat::normalize_origin(origin));
    }

    asio::io_context io(config.threads);
    std::unique_ptr<chat::server> server;
    try {
        server = std::make_unique<chat::server>(io, config);
    } catch (const std::exception& e) {
        // The broadcast constructor names the URL with its password masked.
        chat::log("cannot start: " + std::string(e.what()));
        return 1;
    }
    std::atomic<int> status{0};
    asio::co_spawn(io, server->start(), [&](std::exception_ptr e) {
        if (server->stopping()) {
            return;  // a signal came first: not a failure to start, shutdown reports it
        }
        if (e) {
            chat::log("cannot start on " + server->broadcast().url() + ": " + describe(e));
            status = 1;
            io.stop();
            return;
        }
        chat::log("listening on http://" + config.host + ":" +
                  std::to_string(server->bound_port()) + "/ (backend " + server->broadcast().url() +
                  ", " + std::to_string(config.threads) + " thread" +
                  (config.threads > 1 ? "s" : "") + ")");
    });

    asio::signal_set signals(io, SIGINT, SIGTERM);
    signals.async_wait([&](boost::system::error_code ec, int signal) {
        if (ec) {
            return;
        }
        chat::log(std::string("stopping on ") + (signal == SIGINT ? "SIGINT" : "SIGTERM"));
        asio::co_spawn(io, server->shutdown(), [&](std::exception_ptr) {
            chat::log("stopped");
            io.stop();
        });
    });

    // An exception out of a handler (std::bad_alloc, say) leaves the server in an
    // unknown state: stop, and say why.
    const auto run = [&] {
        try {
            io.run();
        } catch (const std::exception& e) {
            chat::log("stopping on an unexpected error: " + std::string(e.what()));
            status = 1;
            io.stop();
        }
    };
    std::vector<std::thread> threads;
    for (int i = 1; i < config.threads; ++i) {
        threads.emplace_back(run);
    }
    run();
    for (auto& t : threads) {
        t.join();
    }
    return status;
}
