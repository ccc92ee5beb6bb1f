// One chat client: a reader that publishes what the client sends, and a writer that
// sends what the room receives. The handshake runs before them, in a coroutine of its
// own that ends with it: what only the handshake needs (the HTTP request) is not kept
// for the client's lifetime. The reader and the writer run on callbacks: an idle
// client holds a pending read and a pending receive, no coroutine frames (1.3 KiB each).
//
// Only the writer writes data frames and the close it decides on; Beast writes pongs
// and its own close frames (answering the client's, or failing the connection). All of
// them go through one write-behind buffer (write_behind_stream.hpp), which keeps
// anything from following a close frame and stops reading from a client whose backlog
// is over its bound. The writer writes every message queued for the client into that
// buffer at once: the frames go out in one system call.
//
// Slow clients: the send queue is the subscriber's, bounded in bytes
// (--client-queue-bytes); a client whose queue overflows is closed with 1008. A burst
// is not slowness: a client is dropped only when its socket has taken nothing for
// --slow-client-timeout while the server had something to send (the write-behind
// stream watches that).

#include "websocket_session.hpp"

#include "burst_detector.hpp"
#include "json_frames.hpp"
#include "text_frame.hpp"
#include "write_behind_stream.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/beast/websocket.hpp>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <optional>
#include <tuple>
#include <utility>

namespace chat {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace websocket = beast::websocket;
using asio::use_awaitable;
using boost::system::error_code;

namespace {

// Every client of the room is sent the same events, each client a batch of them in
// turn: a message is checked once per thread, not once per client. The last checked
// ones are remembered by address (at most 64, of at most 4 KiB, so what they keep alive
// stays small); holding them means no other message can take their address meanwhile.
bool is_valid_utf8_once(const broadcaster::event& ev) {
    struct checked {
        broadcaster::event event;
        bool valid = false;
    };
    constexpr std::size_t slots = 64;
    constexpr std::size_t max_remembered = 4096;
    thread_local std::array<checked, slots> remembered;
    const auto message = ev.message();
    if (message.size() > max_remembered) {
        return broadcaster::is_valid_utf8(message);
    }
    auto& slot = remembered[(reinterpret_cast<std::uintptr_t>(message.data()) >> 4) % slots];
    if (!slot.event || slot.event.message().data() != message.data() ||
        slot.event.message().size() != message.size()) {
        slot.event = ev;
        slot.valid = broadcaster::is_valid_utf8(message);
    }
    return slot.valid;
}

class websocket_session : public std::enable_shared_from_this<websocket_session> {
  public:
    // The WebSocket layer has its own timeouts, so it runs on the bare socket: the
    // HTTP stream's timer would only cost time on every write.
    websocket_session(server& srv, asio::ip::tcp::socket socket)
        : server_(srv),
          ws_(std::move(socket), max_backlog_bytes, srv.settings().slow_client_timeout),
          publish_done_(ws_.get_executor()) {
        // Never expires: waiting on it ends when cancel() wakes every waiter.
        publish_done_.expires_at(asio::steady_timer::time_point::max());
    }

    void start(beast::http::request<beast::http::string_body> request, join_request join) {
        asio::co_spawn(ws_.get_executor(), open(std::move(request), std::move(join)),
                       [self = shared_from_this()](std::exception_ptr e) {
                           if (e) {
                               log_connection_failure(e);
                           }
                       });
    }

  private:
    // Joins the room and accepts the WebSocket, then starts the reader and the writer.
    asio::awaitable<void> open(beast::http::request<beast::http::string_body> request,
                               join_request join) {
        const auto self = shared_from_this();
        const auto& settings = server_.settings();
        // The WebSocket layer times out from here on (handshake, idle with pings).
        websocket::stream_base::timeout timeouts =
            websocket::stream_base::timeout::suggested(beast::role_type::server);
        timeouts.handshake_timeout = settings.handshake_timeout;
        ws_.set_option(timeouts);
        ws_.read_message_max(settings.max_message_bytes);
        json_frames_ = join.json_frames;
        ws_.set_option(websocket::stream_base::decorator(
            [json = json_frames_](websocket::response_type& response) {
                response.set(beast::http::field::server, "broadcaster-chat");
                if (json) {
                    response.set(beast::http::field::sec_websocket_protocol, json_subprotocol);
                }
            }));

        // Each client is a subscriber of the room: the broadcast keeps one broker
        // subscription for all of them. Its queue, bounded in bytes, is the client's
        // send queue. Subscribing before accepting means a client whose socket is open
        // is in the room: nothing published after that is missed.
        auto [subscribe_ec, sub] = co_await join_room(join.since);
        if (subscribe_ec) {
            beast::http::response<beast::http::string_body> unavailable(
                beast::http::status::service_unavailable, request.version());
            unavailable.set(beast::http::field::content_type, "text/plain");
            unavailable.body() = "chat backend unavailable: " + subscribe_ec.message() + "\n";
            unavailable.prepare_payload();
            co_await beast::http::async_write(ws_.next_layer(), unavailable,
                                              asio::as_tuple(use_awaitable));
            co_await ws_.next_layer().async_wait_flushed(asio::as_tuple(use_awaitable));
            co_return;
        }
        auto [accept_ec] = co_await ws_.async_accept(request, asio::as_tuple(use_awaitable));
        if (accept_ec) {
            co_return;
        }
        ws_.next_layer().begin_frames();
        subscriber_ = std::move(sub);
        auto& stats = server_.stats();
        stats.clients.fetch_add(1, std::memory_order_relaxed);
        stats.connections_total.fetch_add(1, std::memory_order_relaxed);
        session_id_ = server_.add_session([weak = weak_from_this()] {
            if (auto session = weak.lock()) {
                asio::dispatch(session->ws_.get_executor(), [session] {
                    session->request_close(websocket::close_code::going_away,
                                           "server shutting down");
                });
            }
        });

        guarded_reader([&] { read_next(); });
        guarded_writer([&] { start_writer(); });
    }

    // An exception out of the reader or the writer (std::bad_alloc, say): the
    // connection is dropped, and the log says why.
    void fail(const std::exception_ptr& e) {
        log_connection_failure(e);
        error_code ignored;
        beast::get_lowest_layer(ws_).close(ignored);
        subscriber_.unsubscribe();  // ends the writer's wait
    }
    // Subscribes to the room: after `since` if the client asked, else with the last
    // join_history() messages first. When the room cannot give everything after `since`
    // (trimmed, more than resume_limit(), a position it never gave, a backend without
    // history), the client joins as a new one would and, with JSON frames, is told so
    // first (a gap frame).
    asio::awaitable<std::tuple<error_code, broadcaster::subscriber>> join_room(
        const std::optional<std::string>& since) {
        const auto& settings = server_.settings();
        broadcaster::subscribe_options options(settings.client_queue_messages,
                                               broadcaster::overflow_policy::close,
                                               settings.client_queue_bytes);
        auto& room = server_.broadcast();
        if (since) {
            options.since = *since;
            options.last = server_.resume_limit();  // more than that after `since`: a gap
            auto [ec, sub] =
                co_await room.async_subscribe(room_channel, options, asio::as_tuple(use_awaitable));
            if (ec != broadcaster::error::history_gap &&
                ec != broadcaster::error::invalid_position &&
                ec != broadcaster::error::history_not_supported) {
                co_return std::tuple{ec, std::move(sub)};
            }
            gap_ = true;
            options.since.reset();
        }
        options.last = server_.join_history();
        co_return co_await room.async_subscribe(room_channel, options,
                                                asio::as_tuple(use_awaitable));
    }

    // The reader, on callbacks like the writer: an idle client's reader is only Beast's
    // pending read.
    void read_next() {
        if (close_code_) {
            end_reader();
            return;
        }
        // Beast makes room in the buffer before the frame arrives, so an idle client
        // holds what its next read may take: a message's first read takes at most
        // first_read_bytes (a flat_buffer would hold 1.5 KiB).
        const auto limit =
            message_.empty() ? first_read_bytes : server_.settings().max_message_bytes;
        ws_.async_read_some(
            read_buffer_.emplace(message_), limit,
            asio::bind_executor(ws_.get_executor(),
                                [self = shared_from_this()](error_code ec, std::size_t) {
                                    self->guarded_reader([&] { self->on_read(ec); });
                                }));
    }

    void on_read(error_code ec) {
        auto& stats = server_.stats();
        if (ec == websocket::error::message_too_big) {
            // Beast has already sent the close frame with 1009.
            stats.oversized_frames.fetch_add(1, std::memory_order_relaxed);
            end_reader();
            return;
        }
        if (ec) {
            end_reader();  // closed by the client, timed out, or torn down
            return;
        }
        if (!ws_.is_message_done()) {
            read_next();
            return;
        }
        if (!ws_.got_text()) {
            stats.binary_frames.fetch_add(1, std::memory_order_relaxed);
            request_close(websocket::close_code::unknown_data, "text messages only");
            end_reader();
            return;
        }
        publish_when_room();
    }

    // Publishes are pipelined: the next message is read while earlier ones are still
    // on their way to the broker, so a client's messages do not wait for each other's
    // round trips. They are published in the order read. Beyond a window the reader
    // stops reading and TCP holds the client back.
    // Every message read is published: once the server has decided to close, the
    // reader stops, so that the close frame can wait for the outcome of each.
    void publish_when_room() {
        if (publishing_messages_ >= max_publishing_messages ||
            publishing_bytes_ >= max_publishing_bytes) {
            publish_done_.async_wait([self = shared_from_this()](error_code) {
                self->guarded_reader([&] { self->publish_when_room(); });
            });
            return;
        }
        if (publish_failed_) {
            end_reader();  // the close frame says a message was refused
            return;
        }
        message_.shrink_to_fit();  // the first read's room does not stay with it
        publish(std::exchange(message_, {}));
        read_next();
    }

    // The client is done: it closed, timed out, broke the protocol, or the server
    // decided to close.
    void end_reader() {
        if (std::exchange(reader_ended_, true)) {
            return;
        }
        request_close(websocket::close_code::normal, "");
        count_if_stalled();
        server_.remove_session(session_id_);
        server_.stats().clients.fetch_sub(1, std::memory_order_relaxed);
    }

    void publish(std::string text) {
        const auto size = text.size();
        ++publishing_messages_;
        publishing_bytes_ += size;
        server_.broadcast().async_publish(
            room_channel, std::move(text),
            asio::bind_executor(ws_.get_executor(),
                                [self = shared_from_this(), size](error_code ec) {
                                    self->on_published(ec, size);
                                }));
    }

    void on_published(error_code ec, std::size_t size) {
        --publishing_messages_;
        publishing_bytes_ -= size;
        publish_done_.cancel();
        auto& stats = server_.stats();
        if (!ec) {
            stats.messages_in.fetch_add(1, std::memory_order_relaxed);
            return;
        }
        if (!publish_failed_) {
            // Only this client is told, whatever else it is being closed for; the room
            // goes on.
            publish_failed_ = true;
            stats.publish_failures.fetch_add(1, std::memory_order_relaxed);
            const bool too_big = ec == broadcaster::error::payload_too_large;
            if (!close_frame_sent_) {
                close_code_.reset();
            }
            request_close(
                too_big ? websocket::close_code::too_big : websocket::close_code::internal_error,
                "message refused: " + ec.message());
        }
    }

    // The writer sends what the room receives. It runs on callbacks, not in a
    // coroutine: an idle client's writer is only a handler waiting in the subscriber,
    // and a message costs no coroutine resumption.
    void start_writer() {
        if (gap_ && json_frames_) {
            error_code ignored;  // a failed write shows in the next one
            write_text(gap_frame(), ignored);
        }
        receive_next();
    }

    void receive_next() {
        if (subscriber_.queued() == 0) {
            // Probably idle for a while: it holds no write buffer meanwhile (a busy
            // client keeps it from batch to batch).
            ws_.next_layer().release_buffers();
        }
        subscriber_.async_receive(received_handler{shared_from_this()});
    }

    // The writer's wake-up. It names its executor itself: through bind_executor, Asio's
    // binder machinery copied the (type-erased) executor seven times per receive.
    struct received_handler {
        std::shared_ptr<websocket_session> self;

        using executor_type = asio::any_io_executor;
        executor_type get_executor() const noexcept { return self->ws_.get_executor(); }

        void operator()(error_code ec, broadcaster::event ev) const {
            self->guarded_writer([&] { self->on_received(ec, std::move(ev)); });
        }
    };

    void on_received(error_code ec, broadcaster::event ev) {
        if (ec == broadcaster::error::subscriber_overflow && !close_code_) {
            count_slow_client();
            close_code_ = websocket::close_code::policy_error;
            close_text_ = "too slow: send queue overflowed";
        }
        if (ec == broadcaster::error::end_of_stream && !close_code_) {
            close_code_ = websocket::close_code::going_away;
            close_text_ = "chat backend disconnected";
        }
        if (ec && !close_code_) {
            // The room's subscription ended (history lost while the backend was away, a
            // channel refused): the client reconnects, and with JSON frames learns what
            // it missed.
            close_code_ = websocket::close_code::going_away;
            close_text_ = ("chat backend: " + ec.message()).substr(0, 120);
        }
        if (ec) {
            finish_writer();
            return;
        }
        // In a burst (a backlog queued already, or a run of messages each less than
        // burst_gap after the one before) more is on its way: letting the others run
        // first (the client's reader among them, when it is the one sending the burst)
        // makes this batch bigger, and the system calls per message fewer. At a steady
        // rate a message goes out at once, with whatever else is queued.
        const bool burst = bursts_.message_at(std::chrono::steady_clock::now()) ||
                           subscriber_.queued() >= burst_backlog;
        send_after_turns(std::move(ev), burst ? burst_turns : 0);
    }

    void send_after_turns(broadcaster::event ev, int turns) {
        if (turns == 0) {
            send_batch(std::move(ev));
            return;
        }
        asio::post(
            ws_.get_executor(), [self = shared_from_this(), ev = std::move(ev), turns]() mutable {
                self->guarded_writer([&] { self->send_after_turns(std::move(ev), turns - 1); });
            });
    }

    // Writes `ev` and whatever else is queued, up to a batch, as frames into the
    // stream's buffer, which then goes out in one system call, at once. Most of the time
    // the socket takes it all and the writer goes straight back to its queue; otherwise
    // it waits until the batch has left. Once a close frame is written (by Beast,
    // answering the client or failing the connection), no data frame may follow.
    void send_batch(broadcaster::event ev) {
        ws_.next_layer().cork();
        std::size_t frames = 0;
        std::size_t bytes = 0;
        error_code write_ec;
        for (std::optional<broadcaster::event> next = std::move(ev);
             next && !ws_.next_layer().close_started();) {
            write_frame(*next, write_ec);
            if (write_ec) {
                break;
            }
            ++frames;
            bytes += next->message().size();
            next.reset();
            if (frames < max_batch && bytes < max_batch_bytes) {
                next = subscriber_.try_receive();
            }
        }
        const bool sent = ws_.next_layer().uncork();
        if (write_ec || ws_.next_layer().close_started()) {
            finish_writer();
            return;
        }
        if (!sent) {
            ws_.next_layer().async_wait_flushed([self = shared_from_this(), frames](error_code ec) {
                self->guarded_writer([&] { self->on_sent(ec, frames); });
            });
            return;
        }
        on_sent({}, frames);
    }

    void on_sent(error_code ec, std::size_t frames) {
        if (ec) {
            finish_writer();
            return;
        }
        auto& stats = server_.stats();
        stats.messages_out.fetch_add(frames, std::memory_order_relaxed);
        stats.batches_out.fetch_add(1, std::memory_order_relaxed);
        receive_next();
    }

    void finish_writer() {
        if (!close_code_ || !can_close()) {
            count_if_stalled();
            return;
        }
        asio::co_spawn(ws_.get_executor(), send_close(),
                       [self = shared_from_this()](std::exception_ptr e) {
                           if (e) {
                               self->fail(e);
                           }
                           self->count_if_stalled();
                       });
    }

    // Run one step of the reader or the writer. An exception (std::bad_alloc, say)
    // drops the connection and goes no further: out of a callback it would end the
    // thread running the server.
    template <typename Step>
    void guarded_reader(Step&& step) {
        try {
            step();
        } catch (...) {
            fail(std::current_exception());
            end_reader();
        }
    }
    template <typename Step>
    void guarded_writer(Step&& step) {
        try {
            step();
        } catch (...) {
            fail(std::current_exception());
            count_if_stalled();
        }
    }

    // Appends a room message to the stream's buffer as one text frame.
    void write_frame(const broadcaster::event& message, error_code& ec) {
        if (json_frames_) {
            write_text(message_frame(message.position(), message.message()), ec);
        } else if (is_valid_utf8_once(message)) {
            write_text(message.message(), ec);
        } else {
            // A text frame holds UTF-8 (a browser drops the connection otherwise), and
            // another publisher may have sent any bytes.
            write_text(broadcaster::to_valid_utf8(message.message()), ec);
        }
    }

    void write_text(std::string_view text, error_code& ec) {
        const text_frame_header header(text.size());
        const std::array<asio::const_buffer, 2> frame{
            asio::buffer(header.bytes.data(), header.size), asio::buffer(text)};
        ws_.next_layer().write_some(frame, ec);
    }

    // The writer's last words, in a coroutine started only then.
    asio::awaitable<void> send_close() {
        // The client's messages read so far are published first, so that a refusal can
        // still change the close frame.
        while (publishing_messages_ > 0) {
            co_await publish_done_.async_wait(asio::as_tuple(use_awaitable));
        }
        if (can_close()) {
            close_frame_sent_ = true;
            co_await ws_.async_close(websocket::close_reason(*close_code_, close_text_),
                                     asio::as_tuple(use_awaitable));
        }
    }

    bool can_close() { return ws_.is_open() && !ws_.next_layer().close_started(); }

    void count_slow_client() {
        if (!counted_slow_) {
            counted_slow_ = true;
            server_.stats().slow_client_disconnects.fetch_add(1, std::memory_order_relaxed);
        }
    }

    // The stream dropped the client, which ends the reader or the writer, or both.
    void count_if_stalled() {
        if (ws_.next_layer().stalled()) {
            count_slow_client();
        }
    }

    // Asks the writer to send a close frame: ending the subscription wakes it.
    void request_close(websocket::close_code code, std::string text) {
        if (!close_code_) {
            close_code_ = code;
            close_text_ = std::move(text);
            close_text_.resize(std::min<std::size_t>(close_text_.size(), 120));  // frame limit 123
        }
        subscriber_.unsubscribe();
    }

    server& server_;
    // Frames sent together: at most this many, and about this many bytes, per system call.
    static constexpr std::size_t max_batch = 64;
    static constexpr std::size_t max_batch_bytes = 256 * 1024;
    // Turns of the event loop a writer lets pass in a burst before it takes its batch.
    // 100 clients on memory://, frames per write: 10 senders flooding, 47 with four
    // turns, 29 with two, 19 with one; one sender, 4.4 with four, 2.9 with two.
    static constexpr int burst_turns = 4;
    // A run of burst_run messages for a client each closer than burst_gap to the one
    // before is a burst (a room of over 1,000 a second); so is a backlog of
    // burst_backlog messages. One short gap, or one more message queued during a
    // fan-out, happen at any steady rate (burst_detector.hpp).
    static constexpr std::chrono::microseconds burst_gap{1000};
    static constexpr std::uint8_t burst_run = 3;
    static constexpr std::size_t burst_backlog = 2;
    // Bytes written for the client and not yet taken by its socket beyond which it is
    // not read (it could make the server write more: pongs).
    static constexpr std::size_t max_backlog_bytes = 256 * 1024;

    // Room for a message's first read. Most chat messages are shorter and take one
    // read; reading every message in two (first into the string's own inline room, so
    // that an idle client would hold nothing) made the reader lag behind the writers:
    // fewer messages per batch, 1.3 times the CPU per delivery in the flood.
    static constexpr std::size_t first_read_bytes = 128;

    // Publishes in flight per client, at most.
    static constexpr std::size_t max_publishing_messages = 64;
    static constexpr std::size_t max_publishing_bytes = 256 * 1024;

    websocket::stream<write_behind_stream> ws_;
    broadcaster::subscriber subscriber_;
    // Wakes the reader (waiting for room in the window) and the writer (waiting to
    // close) when a publish completes.
    asio::steady_timer publish_done_;
    std::uint64_t session_id_ = 0;  // server::add_session's
    std::size_t publishing_messages_ = 0;
    std::size_t publishing_bytes_ = 0;
    burst_detector bursts_{burst_gap, burst_run};
    std::string message_;  // the client's message being read
    // Beast reads into it by reference; made anew for each read, to see message_ as it is.
    std::optional<asio::dynamic_string_buffer<char, std::char_traits<char>, std::allocator<char>>>
        read_buffer_;
    bool reader_ended_ = false;
    bool publish_failed_ = false;
    bool close_frame_sent_ = false;
    bool counted_slow_ = false;
    bool json_frames_ = false;  // broadcaster.v1: JSON frames with positions
    bool gap_ = false;          // the client's `since` could not be served
    std::optional<websocket::close_code> close_code_;
    std::string close_text_;
};

}  // namespace

void start_websocket(server& srv, asio::ip::tcp::socket socket,
                     beast::http::request<beast::http::string_body> request, join_request join) {
    std::make_shared<websocket_session>(srv, std::move(socket))
        ->start(std::move(request), std::move(join));
}

}  // namespace chat
