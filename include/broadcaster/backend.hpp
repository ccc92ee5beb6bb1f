#pragma once

/// @file
/// The backend interface, for adding a broker: implement `backend`, then register a
/// factory for a URL scheme with `register_backend`, or hand an instance to a
/// `broadcast` directly.

#include <broadcaster/event.hpp>
#include <broadcaster/export.hpp>
#include <broadcaster/options.hpp>

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/any_io_executor.hpp>
#include <boost/system/error_code.hpp>

#include <functional>
#include <memory>
#include <string>

namespace broadcaster {

/// Where a backend sends what it receives. Implemented by the broadcast core.
/// Every call must be made on the backend's executor (`backend::executor()`).
class BROADCASTER_EXPORT backend_sink {
  public:
    /// Hands over one incoming event. The core fans it out to the local subscribers
    /// of `ev.channel()` without copying the message.
    virtual void deliver(event ev) = 0;

    /// Reports a change of the connection to the broker. `ec` says why, if it
    /// was a failure. A backend reports `reconnecting` when it lost its connection and
    /// `connected` once every subscription is in place again.
    virtual void state_changed(connection_state state, boost::system::error_code ec) = 0;

  protected:
    ~backend_sink() = default;
};

/// What a backend factory is given to build a backend.
struct backend_config {
    /// The URL as given by the user. Contains secrets: never log it.
    std::string url;
    /// The URL with secrets masked (`redact_url`): for logs and error messages.
    std::string redacted_url;
    /// The broadcast's options; a backend's URL query options override them.
    broadcast_options options;
};

/// A broker connection, driven by one broadcast.
///
/// The broadcast calls every member function on the backend's executor (a strand),
/// never concurrently, and only after `attach`. One subscription per channel: the
/// broadcast calls `async_subscribe` once for a channel and `async_unsubscribe` when
/// its last local subscriber leaves; the backend keeps no local subscriber state.
///
/// Per channel, the broadcast has at most one `async_subscribe` or `async_unsubscribe`
/// in flight: it waits for one to complete before it makes the next call for that
/// channel, so they alternate (subscribe, unsubscribe, subscribe, ...) and a backend
/// never has to order them itself. A subscribe that fails is not retried by the
/// broadcast: it fails the local subscribe operations waiting for that channel.
/// After `async_disconnect` these rules start again from scratch (completions of the
/// previous connection are ignored).
///
/// Completion handlers must be invoked through their associated executor (e.g. with
/// `boost::asio::post`), never from inside the call that received them, and exactly
/// once, also when the backend is destroyed with operations pending (complete them
/// with `boost::asio::error::operation_aborted`, as destroying an Asio I/O object
/// does). The handlers hold no strong reference to the broadcast: a backend may keep
/// them as long as it likes without keeping the broadcast alive.
/// `async_subscribe` completes only once the broker has confirmed the subscription;
/// `async_publish` once the broker accepted the message.
///
/// Network backends supervise their connection: they reconnect after a loss, restore
/// every subscription and report it through `sink().state_changed`.
class BROADCASTER_EXPORT backend {
  public:
    /// The completion handler type of every backend operation.
    using completion_handler = boost::asio::any_completion_handler<void(boost::system::error_code)>;

    /// Destroyed by the broadcast on any thread (possibly while its io_context is being
    /// destroyed); pending work must not touch it after. Everything the backend owns
    /// (connections, sockets) must be freed by then, or at the latest when the
    /// io_context is destroyed: never keep it alive through a reference cycle.
    virtual ~backend() = default;

    /// Connects to the broker. Completes with an error if it cannot within the
    /// connect timeout.
    virtual void async_connect(completion_handler handler) = 0;
    /// Closes the connection; every subscription is dropped.
    virtual void async_disconnect(completion_handler handler) = 0;
    /// Subscribes to `channel`; completes when the broker has confirmed it.
    virtual void async_subscribe(std::string channel, completion_handler handler) = 0;
    /// Unsubscribes from `channel`.
    virtual void async_unsubscribe(std::string channel, completion_handler handler) = 0;
    /// Publishes `message` on `channel`; completes when the broker accepted it.
    virtual void async_publish(std::string channel, std::string message,
                               completion_handler handler) = 0;

    /// Called once by the broadcast before any other call: the executor every call
    /// will be made on, and the sink for incoming events.
    void attach(boost::asio::any_io_executor executor, std::weak_ptr<backend_sink> sink) {
        executor_ = std::move(executor);
        sink_ = std::move(sink);
        sink_ref_ = sink_.lock().get();
    }

  protected:
    /// The strand all calls are made on; run the backend's own work on it.
    const boost::asio::any_io_executor& executor() const noexcept { return executor_; }

    /// The sink; valid for the backend's whole life. Call it on `executor()` only.
    backend_sink& sink() const noexcept { return *sink_ref_; }

    /// A weak reference to the sink, for work that may outlive the backend (e.g. a
    /// delivery posted from another thread): lock it on `executor()` before use.
    const std::weak_ptr<backend_sink>& weak_sink() const noexcept { return sink_; }

  private:
    boost::asio::any_io_executor executor_;
    std::weak_ptr<backend_sink> sink_;
    backend_sink* sink_ref_ = nullptr;
};

/// Makes a backend for a URL. May throw `boost::system::system_error` (e.g.
/// `error::invalid_url` for a URL it cannot use); the message must not contain
/// `config.url`, only `config.redacted_url`.
using backend_factory = std::function<std::unique_ptr<backend>(const backend_config& config)>;

/// Registers `factory` for URLs whose scheme is `scheme` (case-insensitive), replacing
/// any backend registered for it before, built-in ones included. Thread-safe; affects
/// broadcasts constructed afterwards.
BROADCASTER_EXPORT void register_backend(std::string scheme, backend_factory factory);

}  // namespace broadcaster
