#pragma once

// A client's TCP socket, as the chat's WebSocket layer uses it. Four jobs:
//
// - Write behind: writes are appended to a buffer and return at once; the buffer goes
//   out in the background, everything written meanwhile in one system call. A batch of
//   frames for one client costs no asynchronous operation per frame. Every frame goes
//   through it (the writer's messages, the reader's pongs, the close frame, keep-alive
//   pings), so frames never interleave on the wire.
// - Nothing after the close frame (RFC 6455 §5.5.1): once write_close() has written it,
//   writes are dropped, and `close_started()` tells the writer to stop.
// - A bound on what a client makes the server write: while more than
//   `read_pause_bytes` (256 KiB) wait to go out (pongs, messages, a close frame), the client is
//   not read (async_wait_readable waits), so it cannot make the server write more; and
//   a client whose socket takes nothing for `stall_timeout` while bytes wait for it is
//   dropped (`stalled()`).
// - A closing handshake that reaches the client: after the close frame, a half-close,
//   then the client's input is read and discarded until it closes too (bounded in
//   time), so the socket is never closed with unread input, which would reset the
//   connection and lose the close frame (RFC 6455 §7.1.1).
//
// Reading holds no buffer: the reader waits for readability, then reads without
// blocking into a buffer of its own (see websocket_session.cpp).
//
// The buffers live in state shared with the operations in flight, so that a completion
// arriving after the stream is gone touches nothing that was freed. Destroying the
// stream closes the socket, which ends them, unless the closing handshake still runs:
// then that closes it.

#include "send_batcher.hpp"
#include "text_frame.hpp"

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/append.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace chat {

class write_behind_stream {
  public:
    using socket_type = boost::asio::ip::tcp::socket;
    using executor_type = socket_type::executor_type;
    using clock = std::chrono::steady_clock;

    // How long the closing handshake waits for the client to close its side.
    static constexpr std::chrono::seconds linger_timeout{2};

    // Bytes written for the client and not yet taken by its socket beyond which it is
    // not read (it could make the server write more: pongs).
    static constexpr std::size_t read_pause_bytes = 256 * 1024;

    // `stall_timeout` below 49 days.
    write_behind_stream(socket_type socket, std::chrono::milliseconds stall_timeout)
        : state_(std::make_shared<state>(std::move(socket), stall_timeout)) {}
    write_behind_stream(write_behind_stream&&) = delete;
    ~write_behind_stream() {
        if (!state_->close_started) {
            close();
        }
    }

    executor_type get_executor() noexcept { return state_->socket.get_executor(); }

    // Bytes written and not yet taken by the socket.
    std::size_t backlog() const noexcept { return state_->backlog(); }
    // The client was dropped: its socket took nothing for the stall timeout while bytes
    // waited for it.
    bool stalled() const noexcept { return state_->stalled; }
    // The close frame was written: nothing may follow it.
    bool close_started() const noexcept { return state_->close_started; }
    // Writing failed, or the connection was closed: nothing more can reach the client.
    bool failed() const noexcept { return static_cast<bool>(state_->error); }

    // Drops the connection at once (no closing handshake).
    void close() noexcept {
        boost::system::error_code ignored;
        if (state_->batched) {
            // Its descriptor is in the thread's round: closed once the round is done
            // with it, not reused by another socket meanwhile.
            state_->close_after_batch = true;
        } else {
            state_->socket.close(ignored);
        }
        if (state_->stall_timer) {
            state_->stall_timer->cancel();
        }
        if (!state_->error) {
            state_->error = boost::asio::error::operation_aborted;
        }
    }

    // Completes once everything written so far is on the wire, or with the error that
    // stopped it.
    template <typename Token>
    auto async_wait_flushed(Token&& token) {
        return boost::asio::async_initiate<Token, void(boost::system::error_code)>(
            [this](auto handler) {
                auto& s = *state_;
                if (s.idle() || s.error) {
                    boost::asio::post(get_executor(),
                                      boost::asio::append(std::move(handler), s.error));
                    return;
                }
                if (!s.flushed_waiters) {
                    s.flushed_waiters = std::make_unique<std::vector<waiter_type>>();
                }
                s.flushed_waiters->emplace_back(std::move(handler));
            },
            token);
    }

    // Between cork() and uncork(), writes wait; uncork() hands them to the socket at
    // once, in one system call, instead of posting a flush. True if the socket took
    // everything; if not, the rest goes out in the background (async_wait_flushed tells
    // when, or what stopped it). A writer that sends a batch this way and finds it gone
    // needs no asynchronous operation at all. When nothing else waits to go out, the
    // batch is gathered in a buffer of the thread, not of the client: a client whose
    // socket takes its batches whole never holds a write buffer.
    void cork() noexcept {
        auto& s = *state_;
        s.staged = s.idle() && !s.error && !s.close_started;
        s.corked = true;
        if (s.staged) {
            staging().clear();
        }
    }
    bool uncork() {
        auto& s = *state_;
        s.corked = false;
        if (std::exchange(s.staged, false)) {
            send_staged(state_);
        }
        if (!s.flush_scheduled && !s.idle()) {
            s.flush_scheduled = true;
            s.last_progress = clock::now();
            flush(state_);
        }
        // A send in the thread's round counts as made: the round ends before anything
        // else runs, and what the socket does not take then goes out as any backlog.
        return (s.idle() || s.only_batched()) && !s.error;
    }
    // Frees the write buffers if nothing waits to go out: for a client that may stay
    // idle a long time. (A busy one keeps them: allocating them for every batch cost
    // the flood 1.7% more instructions.)
    void release_buffers() {
        auto& s = *state_;
        if (s.idle()) {
            s.out.reset();
        }
    }

    // Appends `buffers`, never blocks; after the close frame, drops them.
    template <typename ConstBuffers>
    void write(const ConstBuffers& buffers, boost::system::error_code& ec) {
        ec = state_->error;
        if (!ec && !state_->close_started) {
            append(buffers);
        }
    }

    // Appends one frame.
    void write_frame(unsigned char opcode, std::string_view payload,
                     boost::system::error_code& ec) {
        const frame_header header(opcode, payload.size());
        const std::array<boost::asio::const_buffer, 2> frame{
            boost::asio::buffer(header.bytes.data(), header.size), boost::asio::buffer(payload)};
        write(frame, ec);
    }

    // Appends the close frame (`code` 0: without a payload), after which nothing is
    // written; once it has gone out, the closing handshake ends the connection.
    void write_close(std::uint16_t code, std::string_view reason) {
        if (state_->close_started) {
            return;
        }
        std::string payload;
        if (code != 0) {
            payload.push_back(static_cast<char>(code >> 8));
            payload.push_back(static_cast<char>(code & 0xff));
            payload.append(reason.substr(0, 123));
        }
        boost::system::error_code ec;
        write_frame(close_opcode, payload, ec);
        state_->close_started = true;
        if (ec) {
            close();
            return;
        }
        async_wait_flushed([s = state_](boost::system::error_code) { linger(s); });
    }

    // Completes when the client may be read: once the backlog is within its bound
    // (or writing failed), when the socket has input. A pending wait holds no buffer.
    template <typename Handler>
    void async_wait_readable(Handler&& handler) {
        auto& s = *state_;
        if (s.backlog() > read_pause_bytes && !s.error) {
            s.paused_read = std::make_unique<waiter_type>(std::forward<Handler>(handler));
            return;
        }
        s.socket.async_wait(socket_type::wait_read, std::forward<Handler>(handler));
    }

    // Reads what the client has sent, without blocking (`would_block` when nothing).
    std::size_t read_some(boost::asio::mutable_buffer buffer, boost::system::error_code& ec) {
        return state_->socket.read_some(buffer, ec);
    }

  private:
    using waiter_type = boost::asio::any_completion_handler<void(boost::system::error_code)>;

    struct state {
        state(socket_type s, std::chrono::milliseconds stall)
            : socket(std::move(s)), stall_timeout(stall) {
            // Read and written without blocking; only a bad descriptor can refuse this,
            // and reading then fails at once.
            boost::system::error_code ignored;
            socket.non_blocking(true, ignored);
        }
        bool idle() const noexcept {
            return !flush_scheduled && !staged && (!out || out->pending.empty());
        }
        // Only a send in the thread's round is under way (see uncork).
        bool only_batched() const noexcept {
            return batched &&
                   (!out || (out->pending.empty() && out->wire_offset == out->on_the_wire.size()));
        }
        std::size_t backlog() const noexcept {
            return out ? out->pending.size() + (out->on_the_wire.size() - out->wire_offset) : 0;
        }
        struct buffers {
            std::string pending;      // written, not yet handed to the socket
            std::string on_the_wire;  // handed to the socket from `wire_offset` on
            std::size_t wire_offset = 0;
        };
        buffers& output() {
            if (!out) {
                out = std::make_unique<buffers>();
            }
            return *out;
        }

        socket_type socket;
        // Exist while there is something to write, and for a busy client (see
        // release_buffers()).
        std::unique_ptr<buffers> out;
        boost::system::error_code error;
        std::unique_ptr<std::vector<waiter_type>> flushed_waiters;  // while any wait
        clock::time_point last_progress = clock::now();
        // Exists only while bytes wait for a full socket.
        std::unique_ptr<boost::asio::steady_timer> stall_timer;

        // A reader waiting for the backlog to shrink. (Not a bare handler: Boost 1.81's
        // move assignment of any_completion_handler recurses without end.)
        std::unique_ptr<waiter_type> paused_read;
        // Packed with the flags below: every idle client holds them.
        const std::chrono::duration<std::uint32_t, std::milli> stall_timeout;
        bool flush_scheduled = false;  // a flush is posted or in flight
        bool corked = false;           // writes wait for uncork()
        bool staged = false;           // ... in staging()
        bool batched = false;          // a send in the thread's round (send_batcher)
        bool close_after_batch = false;
        bool stalled = false;
        bool close_started = false;
    };

    template <typename ConstBuffers>
    void append(const ConstBuffers& buffers) {
        auto& s = *state_;
        auto& target = s.staged ? staging() : s.output().pending;
        const auto before = target.size();
        for (auto it = boost::asio::buffer_sequence_begin(buffers);
             it != boost::asio::buffer_sequence_end(buffers); ++it) {
            const boost::asio::const_buffer piece = *it;
            target.append(static_cast<const char*>(piece.data()), piece.size());
        }
        if (target.size() > before && !s.flush_scheduled && !s.corked) {
            // Posted, not started: what the caller writes next joins this flush.
            s.flush_scheduled = true;
            s.last_progress = clock::now();
            boost::asio::post(get_executor(), [state = state_] { flush(state); });
        }
    }

    static constexpr std::size_t max_staging_capacity = 1024 * 1024;

    static std::string& staging() {
        thread_local std::string batch;
        return batch;
    }

    // Sends what cork() staged; what the socket does not take goes into the client's
    // buffer, for flush().
    static void send_staged(const std::shared_ptr<state>& s) {
        auto& batch = staging();
        if (auto* round = send_batcher::collecting(); round != nullptr && !batch.empty()) {
            round->add(s->socket.native_handle(), batch, s, &on_batched_send);
            // Until the round is done, what is written waits (pending) behind it.
            s->batched = true;
            s->flush_scheduled = true;
            release(batch, max_staging_capacity);
            return;
        }
        std::size_t sent = 0;
        while (sent < batch.size()) {
            boost::system::error_code ec;
            const auto n = s->socket.write_some(boost::asio::buffer(batch) + sent, ec);
            if (ec == boost::asio::error::interrupted) {
                continue;
            }
            if (ec == boost::asio::error::would_block) {
                break;
            }
            if (ec) {
                s->error = ec;
                break;
            }
            sent += n;
        }
        if (sent < batch.size() && !s->error) {
            s->output().pending.assign(batch, sent);
        }
        // One per thread: it may keep what a batch of big messages needed.
        release(batch, max_staging_capacity);
        if (s->idle()) {
            wake_flushed_waiters(s);
        }
    }

    // The outcome of a send in the thread's round: what the socket did not take, and
    // what was written meanwhile, go out as any backlog.
    static void on_batched_send(const std::shared_ptr<void>& owner, std::string_view unsent,
                                boost::system::error_code ec) noexcept {
        const auto s = std::static_pointer_cast<state>(owner);
        s->batched = false;
        if (ec) {
            // Nothing more can reach the client: it is dropped (its reader wakes).
            s->close_after_batch = true;
            if (!s->error) {
                s->error = ec;
            }
        }
        try {
            const bool written_meanwhile = s->out && !s->out->pending.empty();
            if (!s->error && unsent.empty() && !written_meanwhile) {
                s->flush_scheduled = false;  // all taken: the common case
                wake_flushed_waiters(s);
            } else {
                if (!s->error && !unsent.empty()) {
                    auto& out = s->output();
                    out.on_the_wire.assign(unsent);
                    out.wire_offset = 0;
                    s->last_progress = clock::now();
                }
                flush(s);  // with nothing left (an error), it ends and wakes the waiters
            }
        } catch (...) {
            s->error = boost::asio::error::no_memory;  // the client is dropped
            s->flush_scheduled = false;
            wake_flushed_waiters(s);
        }
        if (std::exchange(s->close_after_batch, false)) {
            boost::system::error_code ignored;
            s->socket.close(ignored);
        }
    }

    // Posted: a writer resumed at once would write its next batch before others have
    // written theirs, with fewer frames in it.
    static void wake_flushed_waiters(const std::shared_ptr<state>& s) {
        if (const auto waiters = std::exchange(s->flushed_waiters, nullptr)) {
            for (auto& waiter : *waiters) {
                boost::asio::post(s->socket.get_executor(),
                                  boost::asio::append(std::move(waiter), s->error));
            }
        }
    }

    // Drops the client once its socket has taken nothing for `stall_timeout` while bytes
    // wait: no frame can reach it any more. Runs from the moment the socket is full
    // until nothing waits, checking a few times per timeout; most clients, whose socket
    // takes everything at once, never need it.
    static void watch_stalls(const std::shared_ptr<state>& s) {
        using namespace std::chrono_literals;
        if (!s->stall_timer) {
            s->stall_timer = std::make_unique<boost::asio::steady_timer>(s->socket.get_executor());
        }
        s->stall_timer->expires_after(
            std::clamp<clock::duration>(clock::duration(s->stall_timeout) / 4, 10ms, 250ms));
        s->stall_timer->async_wait([s](boost::system::error_code ec) {
            if (ec || s->error || s->backlog() == 0) {
                s->stall_timer.reset();
                return;
            }
            if (clock::now() - s->last_progress >= s->stall_timeout) {
                s->stalled = true;
                s->stall_timer.reset();
                boost::system::error_code ignored;
                s->socket.close(ignored);
                return;
            }
            watch_stalls(s);
        });
    }

    // Empties a buffer; one that a burst of big messages grew past `kept_capacity` does
    // not keep its memory.
    static void release(std::string& buffer, std::size_t kept_capacity = 64 * 1024) {
        if (buffer.capacity() > kept_capacity) {
            std::string().swap(buffer);
        } else {
            buffer.clear();
        }
    }

    static void flush(const std::shared_ptr<state>& s) {
        auto& out = s->output();
        for (;;) {
            if (out.wire_offset == out.on_the_wire.size()) {
                out.wire_offset = 0;
                if (out.pending.empty() || s->error) {
                    s->flush_scheduled = false;
                    release(out.on_the_wire);
                    release(out.pending);
                    wake_flushed_waiters(s);
                    return;
                }
                release(out.on_the_wire);
                out.on_the_wire.swap(out.pending);
            }
            // Most of the time the socket takes it all at once: no asynchronous
            // operation, and no stall watch.
            boost::system::error_code ec;
            const auto n =
                s->socket.write_some(boost::asio::buffer(out.on_the_wire) + out.wire_offset, ec);
            if (ec == boost::asio::error::would_block || ec == boost::asio::error::interrupted) {
                break;
            }
            wrote(s, ec, n);
        }
        // The socket is full: the rest, then what is written meanwhile, once it takes more.
        if (!s->stall_timer) {
            watch_stalls(s);
        }
        s->socket.async_wait(socket_type::wait_write, [s](boost::system::error_code ec) {
            if (ec) {
                wrote(s, ec, 0);
            }
            flush(s);
        });
    }

    // Accounts for `n` bytes the socket took, or for the error that stopped it.
    static void wrote(const std::shared_ptr<state>& s, boost::system::error_code ec,
                      std::size_t n) {
        auto& out = s->output();
        out.wire_offset += n;
        if (n > 0) {
            s->last_progress = clock::now();
        }
        if (ec && !s->error) {
            s->error = ec;
        }
        if (s->error) {
            out.wire_offset = out.on_the_wire.size();
        }
        if (s->paused_read && (s->backlog() <= read_pause_bytes || s->error)) {
            // Posted: the reader may write (a pong) and must find the flush settled.
            boost::asio::post(
                s->socket.get_executor(),
                boost::asio::append(std::move(*s->paused_read), boost::system::error_code{}));
            s->paused_read.reset();
        }
    }

    // After the close frame has gone out: half-close, read until the client closes (or
    // `linger_timeout`), close.
    static void linger(const std::shared_ptr<state>& s) {
        struct lingering {
            explicit lingering(std::shared_ptr<state> st)
                : s(std::move(st)), timer(s->socket.get_executor()) {}
            std::shared_ptr<state> s;
            boost::asio::steady_timer timer;
            char scratch[4096];
        };
        boost::system::error_code ignored;
        s->socket.shutdown(socket_type::shutdown_send, ignored);  // FIN after the close frame
        auto l = std::make_shared<lingering>(s);
        l->timer.expires_after(linger_timeout);
        l->timer.async_wait([l](boost::system::error_code ec) {
            if (!ec) {
                boost::system::error_code ignored;
                l->s->socket.cancel(ignored);
            }
        });
        discard_input(l);
    }

    template <typename Lingering>
    static void discard_input(const std::shared_ptr<Lingering>& l) {
        l->s->socket.async_read_some(boost::asio::buffer(l->scratch),
                                     [l](boost::system::error_code ec, std::size_t) {
                                         if (!ec) {
                                             discard_input(l);
                                             return;
                                         }
                                         l->timer.cancel();
                                         boost::system::error_code ignored;
                                         l->s->socket.close(ignored);
                                     });
    }

    std::shared_ptr<state> state_;
};

}  // namespace chat
