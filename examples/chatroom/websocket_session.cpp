// One chat client: a reader that publishes what the client sends, and a writer that
// sends what the room receives, over a WebSocket layer of the chat's own (Beast only
// parses the HTTP request). The handshake runs before them, in a coroutine of its own
// that ends with it: what only the handshake needs (the HTTP request) is not kept for
// the client's lifetime. The reader and the writer run on callbacks: an idle client
// holds a pending wait for readability and its seat in the room (or a pending
// receive), no coroutine frames and no read buffer.
//
// The reader waits until the socket is readable, reads without blocking into a buffer
// of its thread, and feeds the frame parser (frame_reader.hpp), which unmasks payloads
// straight into the message being assembled. It answers pings and the client's close,
// and fails the connection on a protocol error. The writer writes data frames and the
// close it decides on. All frames go through one write-behind buffer
// (write_behind_stream.hpp), which keeps anything from following a close frame and
// stops reading from a client whose backlog is over its bound. The writer writes every
// message queued for the client into that buffer at once: the frames go out in one
// system call.
//
// Slow clients: the send queue is the room seat's (or the subscriber's), bounded in bytes
// (--client-queue-bytes); a client whose queue overflows is closed with 1008. A burst
// is not slowness: a client is dropped only when its socket has taken nothing for
// --slow-client-timeout while the server had something to send (the write-behind
// stream watches that).
//
// Idle clients: one sweep of the server's checks them all (server::check_idle); a
// client silent for half of --idle-timeout is pinged, one silent for all of it dropped.

#include "websocket_session.hpp"

#include "burst_detector.hpp"
#include "frame_reader.hpp"
#include "json_frames.hpp"
#include "room.hpp"
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
#include <boost/beast/websocket/detail/hybi13.hpp>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <optional>
#include <span>
#include <sstream>
#include <tuple>
#include <utility>

namespace chat {

namespace asio = boost::asio;
namespace beast = boost::beast;
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

// The 101 that accepts `request`'s upgrade (RFC 6455 §4.2.2).
std::string switching_protocols(const beast::http::request<beast::http::string_body>& request,
                                bool json_frames) {
    beast::websocket::detail::sec_ws_accept_type accept;
    beast::websocket::detail::make_sec_ws_accept(accept,
                                                 request[beast::http::field::sec_websocket_key]);
    std::string response =
        "HTTP/1.1 101 Switching Protocols\r\n"
        "Upgrade: websocket\r\n"
        "Connection: upgrade\r\n"
        "Sec-WebSocket-Accept: ";
    response.append(accept.data(), accept.size());
    response += "\r\nServer: broadcaster-chat\r\n";
    if (json_frames) {
        response += "Sec-WebSocket-Protocol: ";
        response += json_subprotocol;
        response += "\r\n";
    }
    response += "\r\n";
    return response;
}

// Input is read into a buffer of the thread, not of the client: an idle client holds
// none. Big enough for many messages per system call.
std::span<unsigned char> read_scratch() {
    thread_local std::array<unsigned char, 16 * 1024> scratch;
    return scratch;
}

class websocket_session : public live_session,
                          public room_seat::listener,
                          public std::enable_shared_from_this<websocket_session> {
  public:
    websocket_session(server& srv, asio::ip::tcp::socket socket)
        : server_(srv),
          stream_(std::move(socket), srv.settings().slow_client_timeout),
          seat_(srv.settings().client_queue_messages, srv.settings().client_queue_bytes),
          reader_(static_cast<std::uint32_t>(srv.settings().max_message_bytes)) {}

    void start(beast::http::request<beast::http::string_body> request, join_request join,
               std::string early_input) {
        asio::co_spawn(stream_.get_executor(),
                       open(std::move(request), std::move(join), std::move(early_input)),
                       [self = shared_from_this()](std::exception_ptr e) {
                           if (e) {
                               log_connection_failure(e);
                           }
                       });
    }

    void close_going_away() override {
        asio::dispatch(stream_.get_executor(), [self = shared_from_this()] {
            self->request_close(close_code::going_away, "server shutting down");
        });
    }

    std::shared_ptr<live_session> share() override { return weak_from_this().lock(); }

    ~websocket_session() override {
        if (listed()) {  // not once the server is gone (see live_session::listed)
            server_.remove_session(*this);
        }
    }

    void check_idle() override {
        asio::dispatch(stream_.get_executor(), [self = shared_from_this()] {
            self->guarded_reader([&] { self->on_idle_check(); });
        });
    }

  private:
    // Joins the room and accepts the WebSocket, then starts the reader and the writer.
    asio::awaitable<void> open(beast::http::request<beast::http::string_body> request,
                               join_request join, std::string early_input) {
        const auto self = shared_from_this();
        json_frames_ = join.json_frames;

        // The client takes a seat in the room's fan-out (room.hpp), or, for history, or
        // with several threads, subscribes on its own (the broadcast keeps one broker
        // subscription for all); with history, it moves to the room once it has caught
        // up. The seat's or the subscriber's queue, bounded in bytes, is the client's
        // send queue. Joining before accepting means a client whose socket is open is in
        // the room: nothing published after that is missed.
        const auto subscribe_ec = co_await join_room(join.since);
        error_code ec;
        if (subscribe_ec) {
            beast::http::response<beast::http::string_body> unavailable(
                beast::http::status::service_unavailable, request.version());
            unavailable.set(beast::http::field::server, "broadcaster-chat");
            unavailable.set(beast::http::field::content_type, "text/plain");
            unavailable.body() = "chat backend unavailable: " + subscribe_ec.message() + "\n";
            unavailable.prepare_payload();
            std::ostringstream text;
            text << unavailable;
            stream_.write(asio::buffer(text.str()), ec);
            co_await stream_.async_wait_flushed(asio::as_tuple(use_awaitable));
            co_return;
        }
        // The 101 goes out like a batch of frames, at once (a client whose socket takes
        // nothing is dropped by the stall watch).
        stream_.cork();
        stream_.write(asio::buffer(switching_protocols(request, json_frames_)), ec);
        stream_.uncork();
        if (ec) {
            co_return;
        }
        auto& stats = server_.stats();
        stats.clients.fetch_add(1, std::memory_order_relaxed);
        stats.connections_total.fetch_add(1, std::memory_order_relaxed);
        last_read_ = clock::now();
        server_.add_session(*this);

        guarded_reader([&] {
            // Frames sent with the request, before the 101 (RFC 6455 §4.1 says to wait;
            // what was sent is read all the same), come first.
            if (early_input.empty() ||
                consume(reinterpret_cast<const unsigned char*>(early_input.data()),
                        early_input.size())) {
                read_next();
            }
        });
        guarded_writer([&] { start_writer(); });
    }

    // An exception out of the reader or the writer (std::bad_alloc, say): the
    // connection is dropped, and the log says why.
    void fail(const std::exception_ptr& e) {
        log_connection_failure(e);
        stream_.close();
        end_queue();  // ends the writer's wait
    }

    // Joins the room: after `since` if the client asked, else with the last
    // join_history() messages first. When the room cannot give everything after `since`
    // (trimmed, more than resume_limit(), a position it never gave, a backend without
    // history), the client joins as a new one would and, with JSON frames, is told so
    // first (a gap frame).
    asio::awaitable<error_code> join_room(const std::optional<std::string>& since) {
        const auto& settings = server_.settings();
        broadcaster::subscribe_options options(settings.client_queue_messages,
                                               broadcaster::overflow_policy::close,
                                               settings.client_queue_bytes);
        auto& broadcast = server_.broadcast();
        if (since) {
            options.since = *since;
            options.last = server_.resume_limit();  // more than that after `since`: a gap
            auto [ec, sub] = co_await broadcast.async_subscribe(room_channel, options,
                                                                asio::as_tuple(use_awaitable));
            if (ec != broadcaster::error::history_gap &&
                ec != broadcaster::error::invalid_position &&
                ec != broadcaster::error::history_not_supported) {
                subscriber_ = std::move(sub);
                wants_room_ = server_.fan_out() != nullptr;
                co_return ec;
            }
            gap_ = true;
            options.since.reset();
        }
        if (server_.join_history() == 0 && server_.fan_out()) {
            in_room_ = true;
            co_return co_await server_.fan_out()->join(seat_);
        }
        options.last = server_.join_history();
        auto [ec, sub] = co_await broadcast.async_subscribe(room_channel, options,
                                                            asio::as_tuple(use_awaitable));
        subscriber_ = std::move(sub);
        wants_room_ = server_.fan_out() != nullptr;
        co_return ec;
    }

    // The reader waits for input with no buffer: an idle client's reader is only its
    // pending wait. While the client's backlog is over its bound the stream does not
    // complete the wait.
    void read_next() {
        if (close_ || stream_.close_started()) {
            end_reader();
            return;
        }
        stream_.async_wait_readable([self = shared_from_this()](error_code ec) {
            self->guarded_reader([&] { self->on_readable(ec); });
        });
    }

    void on_readable(error_code ec) {
        if (ec) {
            peer_gone_ = true;  // torn down (a stall, an idle timeout, a failure)
            end_reader();
            return;
        }
        if (reader_ended_) {
            return;
        }
        if (close_ || stream_.close_started()) {
            end_reader();  // the closing handshake reads from here on
            return;
        }
        const auto scratch = read_scratch();
        // A client sending a lot gets a few reads in a row, then waits its turn.
        for (int reads = 0; reads < 4; ++reads) {
            const auto n = stream_.read_some(asio::buffer(scratch.data(), scratch.size()), ec);
            if (ec == asio::error::would_block || ec == asio::error::interrupted) {
                break;
            }
            if (ec) {
                peer_gone_ = true;  // gone without a close frame (end of input, reset)
                end_reader();
                return;
            }
            last_read_ = clock::now();
            pinged_ = false;
            if (!consume(scratch.data(), n)) {
                return;
            }
            if (n < scratch.size()) {
                break;  // taken all there was
            }
        }
        read_next();
    }

    // Feeds `size` received bytes to the parser and acts on what it finds. False when
    // the reader stops here: it ended, or waits for room in the publish window (then
    // the rest of the input waits in held_input_).
    bool consume(const unsigned char* data, std::size_t size) {
        std::size_t offset = 0;
        while (offset < size) {
            const auto [what, consumed] = reader_.feed(data + offset, size - offset, message_);
            offset += consumed;
            switch (what) {
                case frame_reader::event::need_more:
                case frame_reader::event::pong:
                    break;
                case frame_reader::event::message:
                    if (!publish_when_room()) {
                        if (reader_ended_) {
                            return false;
                        }
                        held_input_ = std::make_unique<std::string>(
                            reinterpret_cast<const char*>(data) + offset, size - offset);
                        return false;
                    }
                    break;
                case frame_reader::event::ping: {
                    error_code ignored;  // a failed write shows in the writer's next one
                    stream_.write_frame(pong_opcode, reader_.control_payload(), ignored);
                    reader_.release_control();
                    break;
                }
                case frame_reader::event::close:
                    answer_close();
                    return false;
                case frame_reader::event::error:
                    fail_connection();
                    return false;
            }
        }
        return true;
    }

    // Publishes are pipelined: the next message is read while earlier ones are still
    // on their way to the broker, so a client's messages do not wait for each other's
    // round trips. They are published in the order read. Beyond a window the reader
    // stops reading and TCP holds the client back.
    // Every message read is published: once the server has decided to close, the
    // reader stops, so that the close frame can wait for the outcome of each.
    // False when the reader stops: the window is full (it resumes by itself) or a
    // publish failed.
    bool publish_when_room() {
        if (publishing_messages_ >= max_publishing_messages ||
            publishing_bytes_ >= max_publishing_bytes) {
            when_published([self = shared_from_this()] {
                self->guarded_reader([&] { self->resume_reading(); });
            });
            return false;
        }
        if (publish_failed_) {
            end_reader();  // the close frame says a message was refused
            return false;
        }
        publish(std::exchange(message_, {}));
        return true;
    }

    // The window has room again: the message read last, then what was read after it.
    void resume_reading() {
        if (!publish_when_room()) {
            return;
        }
        const auto input = std::move(held_input_);
        if (consume(reinterpret_cast<const unsigned char*>(input->data()), input->size())) {
            read_next();
        }
    }

    // The client closes: the close frame echoes its code (RFC 6455 §5.5.1), at once.
    void answer_close() {
        if (can_close()) {
            const auto code = reader_.code();
            stream_.write_close(
                code == static_cast<std::uint16_t>(close_code::no_status) ? 0 : code, "");
        }
        end_reader();
    }

    // The client broke the protocol, sent binary or too big a message: the close frame
    // says so once the messages read before are published (a refusal can still change
    // it) and their echoes queued ahead of it.
    void fail_connection() {
        auto& stats = server_.stats();
        const auto code = static_cast<close_code>(reader_.code());
        if (code == close_code::too_big) {
            stats.oversized_frames.fetch_add(1, std::memory_order_relaxed);
        } else if (code == close_code::unknown_data) {
            stats.binary_frames.fetch_add(1, std::memory_order_relaxed);
        }
        leave_room();
        close_after_publishes(code, std::string(reader_.reason()));
    }

    void close_after_publishes(close_code code, std::string reason) {
        if (publishing_messages_ > 0) {
            when_published([self = shared_from_this(), code, reason = std::move(reason)]() mutable {
                self->close_after_publishes(code, std::move(reason));
            });
            return;
        }
        // Posted: the writer's wake-up for an echo just delivered comes first.
        asio::post(stream_.get_executor(),
                   [self = shared_from_this(), code, reason = std::move(reason)]() mutable {
                       self->request_close(code, std::move(reason));
                   });
    }

    // Keep-alive (Beast's suggested server timeouts): a client silent for half the idle
    // timeout is pinged; silent for all of it, dropped.
    void on_idle_check() {
        if (reader_ended_ || stream_.close_started()) {
            return;
        }
        if (seat_.queued() == 0) {
            // Not when the writer is done with a batch: a flood would regrow it each time.
            seat_.release_memory();
        }
        const auto silence = clock::now() - last_read_;
        const auto timeout = server_.settings().idle_timeout;
        if (pinged_ && silence >= timeout) {
            stream_.close();  // wakes the reader, which ends everything
            return;
        }
        if (!pinged_ && silence >= timeout / 2) {
            pinged_ = true;
            error_code ignored;
            stream_.write_frame(ping_opcode, {}, ignored);
        }
    }

    // The client is done: it closed, timed out, or the server decided to close.
    void end_reader() {
        leave_room();
        request_close(close_code::normal, "");
    }

    void leave_room() {
        if (reader_ended_) {
            return;
        }
        reader_ended_ = true;
        std::string().swap(message_);
        held_input_.reset();
        count_if_stalled();
        server_.remove_session(*this);
        server_.stats().clients.fetch_sub(1, std::memory_order_relaxed);
    }

    void publish(std::string text) {
        const auto size = text.size();
        ++publishing_messages_;
        publishing_bytes_ += static_cast<std::uint32_t>(size);
        server_.broadcast().async_publish(
            room_channel, std::move(text),
            asio::bind_executor(stream_.get_executor(),
                                [self = shared_from_this(), size](error_code ec) {
                                    self->on_published(ec, size);
                                }));
    }

    void on_published(error_code ec, std::size_t size) {
        --publishing_messages_;
        publishing_bytes_ -= static_cast<std::uint32_t>(size);
        if (publish_done_) {
            publish_done_->cancel();
        }
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
                close_.reset();
            }
            request_close(too_big ? close_code::too_big : close_code::internal_error,
                          "message refused: " + ec.message());
        }
    }

    // Runs `then` once a publish completes. The timer exists only while someone waits
    // (the reader for room in the window, the writer or a failing reader to close).
    template <typename Then>
    void when_published(Then then) {
        if (!publish_done_) {
            publish_done_ = std::make_unique<asio::steady_timer>(stream_.get_executor());
            // Never expires: waiting on it ends when cancel() wakes every waiter.
            publish_done_->expires_at(asio::steady_timer::time_point::max());
        }
        publish_done_->async_wait(
            [self = shared_from_this(), then = std::move(then)](error_code) mutable {
                if (self->publish_done_ && self->publishing_messages_ == 0) {
                    self->publish_done_.reset();  // no other waiter: cancel() woke them all
                }
                then();
            });
    }

    // The writer sends what the room receives. It runs on callbacks, not in a
    // coroutine: an idle client's writer is only a handler waiting in the subscriber,
    // and a message costs no coroutine resumption.
    void start_writer() {
        if (gap_ && json_frames_) {
            error_code ignored;  // a failed write shows in the next one
            stream_.write_frame(text_opcode, gap_frame(), ignored);
        }
        receive_next();
    }

    void receive_next() {
        if (close_ && close_->drain == 0) {
            end_queue();  // what came after the close decision is not sent
            finish_writer();
            return;
        }
        // Asked for while closing: the message it brings is one of those to drain.
        receive_drains_ = close_ != nullptr;
        if (queued() == 0) {
            // Probably idle for a while: it holds no write buffer meanwhile (a busy
            // client keeps it from batch to batch).
            stream_.release_buffers();
        }
        if (!in_room_) {
            if (wants_room_ && last_sent_ && subscriber_.queued() == 0) {
                // Everything its subscriber had is sent: the room may take it over.
                server_.fan_out()->offer(seat_, *this, last_sent_);
            }
            subscriber_.async_receive(received_handler{shared_from_this()});
            return;
        }
        if (queued() > 0 || seat_.error()) {
            // Posted, as a subscriber's receive would be: the others get their turn.
            // A message, or why the seat ended once none is left (taking the last one
            // may be what makes error() say so: it is not this message's outcome).
            auto ev = seat_.try_receive();
            const auto ec = ev ? error_code() : seat_.error();
            asio::post(stream_.get_executor(),
                       [self = shared_from_this(), ec,
                        ev = ev ? std::move(*ev) : broadcaster::event()]() mutable {
                           self->on_room_message(ec, std::move(ev));
                       });
            return;
        }
        seat_.wait(shared_from_this());  // the fan-out calls on_room_message
    }

    void on_room_message(error_code ec, broadcaster::event ev) override {
        guarded_writer([&] { on_received(ec, std::move(ev)); });
    }

    // The writer's queue: the seat's in the room's fan-out, or the subscriber's.
    std::size_t queued() const noexcept { return in_room_ ? seat_.queued() : subscriber_.queued(); }
    std::optional<broadcaster::event> try_take() {
        return in_room_ ? seat_.try_receive() : subscriber_.try_receive();
    }
    // Ends the queue: a waiting writer wakes with operation_aborted.
    void end_queue() {
        if (!in_room_) {
            subscriber_.unsubscribe();
            if (wants_room_) {
                server_.fan_out()->withdraw(seat_);
            }
            return;
        }
        if (seat_.leave()) {
            asio::post(stream_.get_executor(), [self = shared_from_this()] {
                self->on_room_message(asio::error::operation_aborted, {});
            });
        }
    }

    // The writer's wake-up. It names its executor itself: through bind_executor, Asio's
    // binder machinery copied the (type-erased) executor seven times per receive.
    struct received_handler {
        std::shared_ptr<websocket_session> self;

        using executor_type = asio::any_io_executor;
        executor_type get_executor() const noexcept { return self->stream_.get_executor(); }

        void operator()(error_code ec, broadcaster::event ev) const {
            self->guarded_writer([&] { self->on_own_message(ec, std::move(ev)); });
        }
    };

    // From the client's own subscriber.
    void on_own_message(error_code ec, broadcaster::event ev) {
        if (in_room_) {
            // Seated meanwhile (the subscriber was dropped): the room sends this message
            // and the rest.
            receive_next();
            return;
        }
        if (wants_room_) {
            server_.fan_out()->withdraw(seat_);  // about to send more on its own
        }
        on_received(ec, std::move(ev));
    }

    // The offer made in receive_next was taken: from the next message on, the client
    // is served by the room. Its subscriber's pending receive completes (aborted), and
    // the writer goes on with the seat.
    void on_room_seated() override {
        in_room_ = true;
        last_sent_ = broadcaster::event();
        subscriber_ = broadcaster::subscriber();
    }

    void on_received(error_code ec, broadcaster::event ev) {
        if (ec) {
            on_receive_ended(ec);
            return;
        }
        if (receive_drains_) {
            receive_drains_ = false;
            if (close_ && close_->drain > 0) {
                --close_->drain;  // the message is one of those queued before the close
            }
        }
        // In a burst (a backlog queued already, or a run of messages each less than
        // burst_gap after the one before) more is on its way: letting the others run
        // first (the client's reader among them, when it is the one sending the burst)
        // makes this batch bigger, and the system calls per message fewer. At a steady
        // rate a message goes out at once, with whatever else is queued.
        const bool burst =
            bursts_.message_at(std::chrono::steady_clock::now()) || queued() >= burst_backlog;
        send_after_turns(std::move(ev), burst ? burst_turns : 0);
    }

    // The subscription ended: the writer closes, saying why.
    void on_receive_ended(error_code ec) {
        if (!close_) {
            if (ec == broadcaster::error::subscriber_overflow) {
                count_slow_client();
                set_close(close_code::policy_error, "too slow: send queue overflowed");
            } else if (ec == broadcaster::error::end_of_stream) {
                set_close(close_code::going_away, "chat backend disconnected");
            } else {
                // The room's subscription ended (history lost while the backend was away,
                // a channel refused): the client reconnects, and with JSON frames learns
                // what it missed.
                set_close(close_code::going_away, "chat backend: " + ec.message());
            }
        }
        finish_writer();
    }

    void send_after_turns(broadcaster::event ev, int turns) {
        if (turns == 0) {
            send_batch(std::move(ev));
            return;
        }
        asio::post(stream_.get_executor(), [self = shared_from_this(), ev = std::move(ev),
                                            turns]() mutable {
            self->guarded_writer([&] { self->send_after_turns(std::move(ev), turns - 1); });
        });
    }

    // Writes `ev` and whatever else is queued, up to a batch, as frames into the
    // stream's buffer, which then goes out in one system call, at once. Most of the time
    // the socket takes it all and the writer goes straight back to its queue; otherwise
    // it waits until the batch has left. Once a close frame is written (the reader's
    // answer to the client's close), no data frame may follow.
    void send_batch(broadcaster::event ev) {
        stream_.cork();
        std::size_t frames = 0;
        std::size_t bytes = 0;
        error_code write_ec;
        for (std::optional<broadcaster::event> next = std::move(ev);
             next && !stream_.close_started();) {
            write_frame(*next, write_ec);
            if (write_ec) {
                break;
            }
            ++frames;
            bytes += next->message().size();
            if (wants_room_ && !in_room_) {
                last_sent_ = *next;  // where the room can take over (receive_next)
            }
            next.reset();
            if (frames < max_batch && bytes < max_batch_bytes && queued() > 0 &&
                writer_may_take()) {
                next = try_take();
            }
        }
        const bool sent = stream_.uncork();
        if (write_ec || stream_.close_started()) {
            finish_writer();
            return;
        }
        if (!sent) {
            stream_.async_wait_flushed([self = shared_from_this(), frames](error_code ec) {
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

    // The writer's last words: the close frame, once the client's messages read so far
    // are published (a refusal can still change it).
    void finish_writer() {
        if (!close_ || !can_close()) {
            count_if_stalled();
            return;
        }
        if (publishing_messages_ > 0) {
            when_published([self = shared_from_this()] {
                self->guarded_writer([&] { self->finish_writer(); });
            });
            return;
        }
        close_frame_sent_ = true;
        stream_.write_close(static_cast<std::uint16_t>(close_->code), close_->reason);
        // A client that takes nothing does not take the close frame either.
        stream_.async_wait_flushed(
            [self = shared_from_this()](error_code) { self->count_if_stalled(); });
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
            stream_.write_frame(text_opcode, message_frame(message.position(), message.message()),
                                ec);
        } else if (is_valid_utf8_once(message)) {
            stream_.write_frame(text_opcode, message.message(), ec);
        } else {
            // A text frame holds UTF-8 (a browser drops the connection otherwise), and
            // another publisher may have sent any bytes.
            stream_.write_frame(text_opcode, broadcaster::to_valid_utf8(message.message()), ec);
        }
    }

    bool can_close() const { return !peer_gone_ && !stream_.failed() && !stream_.close_started(); }

    void count_slow_client() {
        if (!counted_slow_) {
            counted_slow_ = true;
            server_.stats().slow_client_disconnects.fetch_add(1, std::memory_order_relaxed);
        }
    }

    // The stream dropped the client, which ends the reader or the writer, or both.
    void count_if_stalled() {
        if (stream_.stalled()) {
            count_slow_client();
        }
    }

    void set_close(close_code code, std::string text) {
        text.resize(std::min<std::size_t>(text.size(), 120));  // frame limit 123
        close_ = std::make_unique<close_decision>(close_decision{code, std::move(text)});
    }

    // Asks the writer to send a close frame after the messages queued for the client
    // now (the echoes of what it sent before among them). With none queued, ending the
    // subscription wakes a waiting writer; a writer with some queued is busy, and
    // closes once it has sent them (writer_may_take, receive_next).
    void request_close(close_code code, std::string text) {
        if (!close_) {
            set_close(code, std::move(text));
            close_->drain = queued();
        }
        if (close_->drain == 0) {
            end_queue();
        }
    }

    // Whether the writer may take another queued message: always, unless a close is
    // decided and the messages queued before it are sent. Counts the one it takes.
    bool writer_may_take() {
        if (!close_) {
            return true;
        }
        if (close_->drain == 0) {
            return false;
        }
        --close_->drain;
        return true;
    }

    using clock = std::chrono::steady_clock;

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

    // Publishes in flight per client, at most.
    static constexpr std::size_t max_publishing_messages = 64;
    static constexpr std::size_t max_publishing_bytes = 256 * 1024;

    write_behind_stream stream_;
    room_seat seat_;                      // the client's queue in the room's fan-out
    broadcaster::subscriber subscriber_;  // or its own subscription
    broadcaster::event last_sent_;        // on its own subscriber: the last message sent
    frame_reader reader_;
    std::string message_;  // the client's message being read
    // Read after a message that waits for room in the window.
    std::unique_ptr<std::string> held_input_;
    // Wakes the reader (waiting for room in the window) and the writer (waiting to
    // close) when a publish completes; exists only while one waits.
    std::unique_ptr<asio::steady_timer> publish_done_;
    std::uint32_t publishing_bytes_ = 0;     // below max_publishing_bytes + a message
    std::uint16_t publishing_messages_ = 0;  // at most max_publishing_messages
    // Bits: every idle client holds them.
    bool reader_ended_ : 1 = false;
    bool receive_drains_ : 1 = false;  // see receive_next
    bool peer_gone_ : 1 = false;       // the connection ended without a closing handshake
    bool pinged_ : 1 = false;          // a keep-alive ping went out since the client last sent
    bool publish_failed_ : 1 = false;
    bool close_frame_sent_ : 1 = false;
    bool counted_slow_ : 1 = false;
    bool json_frames_ : 1 = false;  // broadcaster.v1: JSON frames with positions
    bool gap_ : 1 = false;          // the client's `since` could not be served
    bool in_room_ : 1 = false;      // seated in the room's fan-out
    bool wants_room_ : 1 = false;   // on its own subscriber (history) until the room takes over
    burst_detector<burst_gap.count(), burst_run> bursts_;
    clock::time_point last_read_;  // when the client last sent something
    // The close frame the server decided on; the reader stops once there is one.
    struct close_decision {
        close_code code;
        std::string reason;
        std::size_t drain = 0;  // queued messages still to send before the close frame
    };
    std::unique_ptr<close_decision> close_;
};

}  // namespace

void start_websocket(server& srv, asio::ip::tcp::socket socket,
                     beast::http::request<beast::http::string_body> request, join_request join,
                     std::string early_input) {
    std::make_shared<websocket_session>(srv, std::move(socket))
        ->start(std::move(request), std::move(join), std::move(early_input));
}

}  // namespace chat
