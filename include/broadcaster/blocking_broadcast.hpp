#pragma once

/// @file
/// `broadcaster::blocking_broadcast`: a blocking facade for programs not built on Asio.

#include <broadcaster/broadcast.hpp>
#include <broadcaster/export.hpp>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

#include <thread>

namespace broadcaster {

/// A broadcast with its own I/O thread and blocking calls, for programs not built on
/// Asio.
///
/// ```
/// broadcaster::blocking_broadcast bc("redis://localhost:6379");
/// bc.connect();
/// auto sub = bc.subscribe("chatroom");
/// bc.publish("chatroom", "hello");
/// std::optional<broadcaster::event> ev = sub.receive_for(std::chrono::seconds(1));
/// ```
///
/// Blocking calls throw `boost::system::system_error` on failure, with the codes of the
/// matching `broadcast` operation. Thread safety: every member function may be called
/// from any thread except the I/O thread (i.e. not from inside a callback).
class BROADCASTER_EXPORT blocking_broadcast {
  public:
    /// Starts the I/O thread; does not connect.
    /// @throws boost::system::system_error as `broadcast`'s constructor.
    explicit blocking_broadcast(std::string_view url, broadcast_options options = {});
    /// Disconnects and joins the I/O thread.
    ~blocking_broadcast();
    blocking_broadcast(const blocking_broadcast&) = delete;
    blocking_broadcast& operator=(const blocking_broadcast&) = delete;

    /// Connects; blocks until connected.
    void connect();
    /// Disconnects; blocks until done.
    void disconnect();
    /// Publishes; blocks until the backend accepted the message.
    void publish(std::string channel, std::string message);
    /// Subscribes; blocks until the broker confirmed. Receive with
    /// `subscriber::receive_for` or `subscriber::try_receive`.
    subscriber subscribe(channel_list channels, subscribe_options options = {});
    /// Subscribes; `on_event` is called on the I/O thread for every event until the
    /// returned handle is destroyed. If `on_event` throws, the subscription ends with
    /// `error::callback_failed` (see `subscription::error()`); the I/O thread goes on.
    /// An exception thrown by any other handler run on the I/O thread (e.g. a state
    /// observer) is dropped, and the thread goes on too.
    subscription subscribe_callback(channel_list channels, event_callback on_event,
                                    subscribe_options options = {});

    /// The underlying asynchronous broadcast, running on the I/O thread.
    broadcast& async() noexcept { return broadcast_; }

  private:
    void run();

    boost::asio::io_context io_;
    boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_;
    broadcast broadcast_;
    std::thread thread_;
};

}  // namespace broadcaster
