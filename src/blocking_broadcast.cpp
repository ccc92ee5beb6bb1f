#include <broadcaster/blocking_broadcast.hpp>

#include <boost/asio/use_future.hpp>

namespace broadcaster {

namespace asio = boost::asio;

blocking_broadcast::blocking_broadcast(std::string_view url, broadcast_options options)
    : work_(io_.get_executor()),
      broadcast_(io_.get_executor(), url, std::move(options)),
      thread_([this] { run(); }) {}

void blocking_broadcast::run() {
    for (;;) {
        try {
            io_.run();
            return;
        } catch (...) {
            // An app handler (e.g. a state observer) threw. The library's own callbacks
            // never let exceptions out; keep serving everything else.
        }
    }
}

blocking_broadcast::~blocking_broadcast() {
    try {
        disconnect();
    } catch (const std::exception&) {
        // Nothing useful to do with a failed disconnect while shutting down.
    }
    work_.reset();
    io_.stop();
    thread_.join();
}

void blocking_broadcast::connect() {
    broadcast_.async_connect(asio::use_future).get();
}

void blocking_broadcast::disconnect() {
    broadcast_.async_disconnect(asio::use_future).get();
}

void blocking_broadcast::publish(std::string channel, std::string message) {
    broadcast_.async_publish(std::move(channel), std::move(message), asio::use_future).get();
}

subscriber blocking_broadcast::subscribe(channel_list channels, subscribe_options options) {
    return broadcast_.async_subscribe(std::move(channels), options, asio::use_future).get();
}

subscription blocking_broadcast::subscribe_callback(channel_list channels, event_callback on_event,
                                                    subscribe_options options) {
    return broadcast_
        .async_subscribe_callback(std::move(channels), std::move(on_event), options,
                                  asio::use_future)
        .get();
}

}  // namespace broadcaster
