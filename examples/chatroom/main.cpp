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

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <CLI/CLI.hpp>

#include <cstdlib>
#include <iostream>
#include <thread>

namespace asio = boost::asio;

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
        ->capture_default_str();
    app.add_option("--client-queue-messages", config.client_queue_messages,
                   "Per-client send queue, in messages; a client that falls further behind "
                   "is disconnected (1008)")
        ->capture_default_str();
    app.add_option("--client-queue-bytes", config.client_queue_bytes,
                   "Per-client send queue, in bytes")
        ->capture_default_str();
    int handshake_seconds = static_cast<int>(config.handshake_timeout.count());
    app.add_option("--handshake-timeout", handshake_seconds,
                   "Seconds a client may take to send its HTTP request or WebSocket upgrade")
        ->capture_default_str();
    CLI11_PARSE(app, argc, argv);
    config.handshake_timeout = std::chrono::seconds(handshake_seconds);

    try {
        asio::io_context io(config.threads);
        chat::server server(io, config);
        int status = 0;
        asio::co_spawn(io, server.start(), [&](std::exception_ptr e) {
            if (!e) {
                chat::log("listening on http://" + config.host + ":" +
                          std::to_string(server.bound_port()) + "/ (backend " +
                          server.broadcast().url() + ", " + std::to_string(config.threads) +
                          " thread" + (config.threads > 1 ? "s" : "") + ")");
                return;
            }
            try {
                std::rethrow_exception(e);
            } catch (const boost::system::system_error& error) {
                chat::log("cannot start on " + server.broadcast().url() + ": " +
                          error.code().message());
            } catch (const std::exception& error) {
                chat::log("cannot start: " + std::string(error.what()));
            }
            status = 1;
            io.stop();
        });

        asio::signal_set signals(io, SIGINT, SIGTERM);
        signals.async_wait([&](boost::system::error_code ec, int signal) {
            if (ec) {
                return;
            }
            chat::log(std::string("stopping on ") + (signal == SIGINT ? "SIGINT" : "SIGTERM"));
            asio::co_spawn(io, server.shutdown(), [&](std::exception_ptr) {
                chat::log("stopped");
                io.stop();
            });
        });

        std::vector<std::thread> threads;
        for (int i = 1; i < config.threads; ++i) {
            threads.emplace_back([&] { io.run(); });
        }
        io.run();
        for (auto& t : threads) {
            t.join();
        }
        return status;
    } catch (const std::exception& e) {
        // The broadcast constructor names the URL with its password masked.
        chat::log("cannot start: " + std::string(e.what()));
        return 1;
    }
}
