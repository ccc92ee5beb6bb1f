#pragma once

// A TCP socket between Beast's WebSocket layer and the wire, with four jobs:
//
// - Write behind: writes are appended to a buffer and complete at once; the buffer
//   goes out in the background, everything written meanwhile in one system call. A
//   batch of frames for one client costs no asynchronous operation per frame. Every
//   writer goes through it (our frames, Beast's pongs and close frames), so frames
//   never interleave on the wire.
// - Nothing after the close frame (RFC 6455 §5.5.1): whoever wrote the close frame,
//   bytes written after it are discarded, and `close_started()` tells the chat writer
//   to stop.
// - A bound on what a client makes the server write: while more than
//   `read_pause_bytes` wait to go out (pongs, messages, a close frame), the client is
//   not read, so it cannot make the server write more; and a client whose socket takes
//   nothing for `stall_timeout` while bytes wait for it is dropped (`stalled()`).
// - Frame checks Beast lacks (frame_scanner.hpp), and a closing handshake that reaches
//   the client: after the close frame, a half-close, then the client's input is read
//   and discarded until it closes too (bounded in time), so the socket is never closed
//   with unread input, which would reset the connection and lose the close frame
//   (RFC 6455 §7.1.1; Beast 1.81's own TCP teardown can do that).
//
// The buffers live in state shared with the operations in flight, so that a completion
// arriving after the stream is gone touches nothing that was freed. Destroying the
// stream closes the socket, which ends them.

#include "frame_scanner.hpp"

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/append.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/websocket/teardown.hpp>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace chat {

class write_behind_stream {
  public:
    using next_layer_type = boost::asio::ip::tcp::socket;
    using executor_type = next_layer_type::executor_type;
    using clock = std::chrono::steady_clock;

    // How long the closing handshake waits for the client to close its side.
    static constexpr std::chrono::seconds linger_timeout{2};

    write_behind_stream(next_layer_type socket, std::size_t read_pause_bytes,
                        clock::duration stall_timeout)
        : state_(std::make_shared<state>(std::move(socket), read_pause_bytes, stall_timeout)) {}
    write_behind_stream(write_behind_stream&&) = default;
    write_behind_stream& operator=(write_behind_stream&&) = delete;
    ~write_behind_stream() {
        if (state_) {
            boost::system::error_code ignored;
            state_->socket.close(ignored);
            state_->stall_timer.cancel();
        }
    }

    executor_type get_executor() noexcept { return state_->socket.get_executor(); }
    next_layer_type& next_layer() noexcept { return state_->socket; }

    // Bytes written and not yet taken by the socket.
    std::size_t backlog() const noexcept { return state_->backlog(); }
    // The client was dropped: its socket took nothing for the stall timeout while bytes
    // waited for it.
    bool stalled() const noexcept { return state_->stalled; }
    // A close frame was written: data frames may not follow.
    bool close_started() const noexcept { return state_->out_frames.close_started(); }

    // From here on the bytes are WebSocket frames (before: the HTTP upgrade).
    void begin_frames() noexcept { state_->framing = true; }

    // Completes once everything written so far is on the wire, or with the error that
    // stopped it. The writer waits so, and so does the closing handshake's teardown.
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
                s.flushed_waiters.emplace_back(std::move(handler));
            },
            token);
    }

    // Between cork() and uncork(), writes wait in the buffer; uncork() hands them to the
    // socket at once, in one system call, instead of posting a flush. True if the socket
    // took everything; if not, the rest goes out in the background (async_wait_flushed
    // tells when, or what stopped it). A writer that sends a batch this way and finds
    // it gone needs no asynchronous operation at all.
    void cork() noexcept { state_->corked = true; }
    bool uncork() {
        auto& s = *state_;
        s.corked = false;
        if (!s.flush_scheduled && !s.pending.empty()) {
            s.flush_scheduled = true;
            s.last_progress = clock::now();
            flush(state_);
        }
        return s.idle() && !s.error;
    }
    // Frees the write buffers if nothing waits to go out: for a client that may stay
    // idle a long time. (A busy one keeps them: allocating them for every batch cost
    // the flood 1.7% more instructions.)
    void release_buffers() {
        auto& s = *state_;
        if (s.idle()) {
            std::string().swap(s.pending);
            std::string().swap(s.on_the_wire);
        }
    }

    // SyncWriteStream: appends, never blocks.
    template <typename ConstBuffers>
    std::size_t write_some(const ConstBuffers& buffers, boost::system::error_code& ec) {
        ec = state_->error;
        return ec ? 0 : append(buffers);
    }
    template <typename ConstBuffers>
    std::size_t write_some(const ConstBuffers& buffers) {
        boost::system::error_code ec;
        const auto n = write_some(buffers, ec);
        if (ec) {
            throw boost::system::system_error(ec);
        }
        return n;
    }

    // AsyncWriteStream: appends and completes at once (through the executor).
    template <typename ConstBuffers, typename Token>
    auto async_write_some(const ConstBuffers& buffers, Token&& token) {
        return boost::asio::async_initiate<Token, void(boost::system::error_code, std::size_t)>(
            [this](auto handler, const ConstBuffers& data) {
                const auto ec = state_->error;
                const auto n = ec ? 0 : append(data);
                boost::asio::post(get_executor(), boost::asio::append(std::move(handler), ec, n));
            },
            token, buffers);
    }

    // AsyncReadStream: waits while the client's backlog is over the bound; frame
    // headers pass through the checks, payloads are read straight into `buffers`.
    template <typename MutableBuffers, typename Token>
    auto async_read_some(const MutableBuffers& buffers, Token&& token) {
        return boost::asio::async_initiate<Token, void(boost::system::error_code, std::size_t)>(
            [this](auto handler, const MutableBuffers& data) {
                boost::asio::mutable_buffer first;
                for (auto it = boost::asio::buffer_sequence_begin(data);
                     it != boost::asio::buffer_sequence_end(data) && first.size() == 0; ++it) {
                    first = *it;
                }
                read(state_, first, read_handler(std::move(handler)), true);
            },
            token, buffers);
    }

    // SyncReadStream only in name (Beast's synchronous write asks for a SyncStream):
    // this stream is read asynchronously, and a blocking read would stall the thread.
    template <typename MutableBuffers>
    std::size_t read_some(const MutableBuffers&, boost::system::error_code& ec) {
        ec = boost::asio::error::operation_not_supported;
        return 0;
    }
    template <typename MutableBuffers>
    std::size_t read_some(const MutableBuffers& buffers) {
        boost::system::error_code ec;
        read_some(buffers, ec);
        throw boost::system::system_error(ec);
    }

    friend void teardown(boost::beast::role_type, write_behind_stream& stream,
                         boost::system::error_code& ec) {
        stream.state_->socket.shutdown(next_layer_type::shutdown_send, ec);
        stream.state_->socket.close(ec);
    }
    // After the buffered bytes (the close frame last) have gone out: half-close, read
    // until the client closes (or `linger_timeout`), close.
    template <typename Handler>
    friend void async_teardown(boost::beast::role_type, write_behind_stream& stream,
                               Handler&& handler) {
        stream.async_wait_flushed(
            [s = stream.state_, handler = teardown_handler(std::forward<Handler>(handler))](
                boost::system::error_code) mutable { linger(s, std::move(handler)); });
    }

  private:
    using waiter_type = boost::asio::any_completion_handler<void(boost::system::error_code)>;
    using teardown_handler = waiter_type;
    using read_handler =
        boost::asio::any_completion_handler<void(boost::system::error_code, std::size_t)>;

    // Frame headers are read through this buffer; payloads bypass it. It exists only
    // while the client is sending: an idle client waits for input without one.
    static constexpr std::size_t input_capacity = 8 * 1024;

    struct state {
        state(next_layer_type s, std::size_t pause, clock::duration stall)
            : socket(std::move(s)),
              stall_timer(socket.get_executor()),
              stall_timeout(stall),
              read_pause_bytes(pause) {
            // Input is read without blocking once the socket is readable (see read()).
            // Only a bad descriptor can refuse this, and reading then fails at once.
            boost::system::error_code ignored;
            socket.non_blocking(true, ignored);
        }
        bool idle() const noexcept { return pending.empty() && !flush_scheduled; }
        std::size_t backlog() const noexcept {
            return pending.size() + (on_the_wire.size() - wire_offset);
        }

        next_layer_type socket;
        // Writing.
        std::string pending;      // written, not yet handed to the socket
        std::string on_the_wire;  // handed to the socket from `wire_offset` on
        std::size_t wire_offset = 0;
        bool flush_scheduled = false;  // a flush is posted or in flight
        bool corked = false;           // writes wait for uncork()
        boost::system::error_code error;
        std::vector<waiter_type> flushed_waiters;
        clock::time_point last_progress = clock::now();
        boost::asio::steady_timer stall_timer;  // runs only while bytes wait
        const clock::duration stall_timeout;
        bool watching = false;  // stall_timer is running
        bool stalled = false;
        bool framing = false;  // past the HTTP upgrade
        outgoing_frames out_frames;
        // Reading.
        const std::size_t read_pause_bytes;
        incoming_frames in_frames;
        std::unique_ptr<unsigned char[]> input;  // received, the first `input_ready` checked;
                                                 // null while nothing is held
        std::size_t input_size = 0;
        std::size_t input_ready = 0;
        boost::system::error_code read_error;  // delivered once `input` is handed on
        // Waiting for the backlog to shrink. (An optional: Boost 1.81's move assignment
        // of any_completion_handler recurses without end.)
        std::optional<read_handler> paused_read;
        boost::asio::mutable_buffer paused_buffer;
    };

    template <typename ConstBuffers>
    std::size_t append(const ConstBuffers& buffers) {
        auto& s = *state_;
        std::size_t size = 0;
        const auto before = s.pending.size();
        for (auto it = boost::asio::buffer_sequence_begin(buffers);
             it != boost::asio::buffer_sequence_end(buffers); ++it) {
            const boost::asio::const_buffer piece = *it;
            const auto* data = static_cast<const unsigned char*>(piece.data());
            const auto kept = s.framing ? s.out_frames.accept(data, piece.size()) : piece.size();
            s.pending.append(reinterpret_cast<const char*>(data), kept);
            size += piece.size();  // what follows the close frame is dropped, not refused
        }
        if (s.pending.size() > before && !s.flush_scheduled && !s.corked) {
            // Posted, not started: what the caller writes next joins this flush.
            s.flush_scheduled = true;
            s.last_progress = clock::now();
            boost::asio::post(get_executor(), [state = state_] { flush(state); });
        }
        return size;
    }

    // Drops the client once its socket has taken nothing for `stall_timeout` while bytes
    // wait: no frame can reach it any more. Runs from the moment the socket is full
    // until nothing waits, checking a few times per timeout; most clients, whose socket
    // takes everything at once, never need it.
    static void watch_stalls(const std::shared_ptr<state>& s) {
        using namespace std::chrono_literals;
        s->watching = true;
        s->stall_timer.expires_after(
            std::clamp<clock::duration>(s->stall_timeout / 4, 10ms, 250ms));
        s->stall_timer.async_wait([s](boost::system::error_code ec) {
            s->watching = false;
            if (ec || s->error || s->backlog() == 0) {
                return;
            }
            if (clock::now() - s->last_progress >= s->stall_timeout) {
                s->stalled = true;
                boost::system::error_code ignored;
                s->socket.close(ignored);
                return;
            }
            watch_stalls(s);
        });
    }

    // Empties a buffer; one that a burst of big messages grew does not keep its memory.
    static void release(std::string& buffer) {
        constexpr std::size_t kept_capacity = 64 * 1024;
        if (buffer.capacity() > kept_capacity) {
            std::string().swap(buffer);
        } else {
            buffer.clear();
        }
    }

    static void flush(const std::shared_ptr<state>& s) {
        for (;;) {
            if (s->wire_offset == s->on_the_wire.size()) {
                s->wire_offset = 0;
                if (s->pending.empty() || s->error) {
                    s->flush_scheduled = false;
                    release(s->on_the_wire);
                    release(s->pending);
                    // Posted: a writer resumed at once would write its next batch
                    // before others have written theirs, with fewer frames in it.
                    auto waiters = std::exchange(s->flushed_waiters, {});
                    for (auto& waiter : waiters) {
                        boost::asio::post(s->socket.get_executor(),
                                          boost::asio::append(std::move(waiter), s->error));
                    }
                    return;
                }
                release(s->on_the_wire);
                s->on_the_wire.swap(s->pending);
            }
            // Most of the time the socket takes it all at once: no asynchronous
            // operation, and no stall watch.
            boost::system::error_code ec;
            const auto n =
                s->socket.write_some(boost::asio::buffer(s->on_the_wire) + s->wire_offset, ec);
            if (ec == boost::asio::error::would_block || ec == boost::asio::error::interrupted) {
                break;
            }
            wrote(s, ec, n);
        }
        // The socket is full: the rest, then what is written meanwhile, once it takes more.
        if (!s->watching) {
            watch_stalls(s);
        }
        s->socket.async_wait(next_layer_type::wait_write, [s](boost::system::error_code ec) {
            if (ec) {
                wrote(s, ec, 0);
            }
            flush(s);
        });
    }

    // Accounts for `n` bytes the socket took, or for the error that stopped it.
    static void wrote(const std::shared_ptr<state>& s, boost::system::error_code ec,
                      std::size_t n) {
        s->wire_offset += n;
        if (n > 0) {
            s->last_progress = clock::now();
        }
        if (ec && !s->error) {
            s->error = ec;
        }
        if (s->error) {
            s->wire_offset = s->on_the_wire.size();
        }
        resume_paused_read(s);
    }

    static void resume_paused_read(const std::shared_ptr<state>& s) {
        if (s->paused_read && (s->backlog() <= s->read_pause_bytes || s->error)) {
            // Posted: the reader may write (a pong) and must find the flush settled.
            boost::asio::post(
                s->socket.get_executor(),
                [s, buffer = s->paused_buffer, handler = std::move(*s->paused_read)]() mutable {
                    read(s, buffer, std::move(handler), false);
                });
            s->paused_read.reset();
        }
    }

    // `initiating`: called from async_read_some, which must not complete inline.
    static void read(const std::shared_ptr<state>& s, boost::asio::mutable_buffer buffer,
                     read_handler handler, bool initiating) {
        const auto complete = [&](boost::system::error_code ec, std::size_t n) {
            auto done = boost::asio::append(std::move(handler), ec, n);
            if (initiating) {
                boost::asio::post(s->socket.get_executor(), std::move(done));
            } else {
                boost::asio::dispatch(std::move(done));
            }
        };
        if (s->input_ready > 0) {
            const auto n = boost::asio::buffer_copy(
                buffer, boost::asio::buffer(s->input.get(), s->input_ready));
            std::memmove(s->input.get(), s->input.get() + n, s->input_size - n);
            s->input_size -= n;
            s->input_ready -= n;
            complete({}, n);
            return;
        }
        if (s->read_error || buffer.size() == 0) {
            complete(s->read_error, 0);
            return;
        }
        if (s->backlog() > s->read_pause_bytes && !s->error) {
            s->paused_read.emplace(std::move(handler));
            s->paused_buffer = buffer;
            return;
        }
        const auto unscanned = s->framing ? s->in_frames.payload_left() : UINT64_MAX;
        if (s->input_size == 0 && unscanned > 0) {
            const auto size =
                static_cast<std::size_t>(std::min<std::uint64_t>(buffer.size(), unscanned));
            s->socket.async_read_some(
                boost::asio::buffer(buffer.data(), size),
                [s, handler = std::move(handler)](boost::system::error_code ec,
                                                  std::size_t n) mutable {
                    if (s->framing) {
                        s->in_frames.skip(n);
                    }
                    boost::asio::dispatch(boost::asio::append(std::move(handler), ec, n));
                });
            return;
        }
        // Whatever the client has sent is taken without waiting; only when there is
        // nothing does the read wait, for readability, with no input buffer: most
        // clients are idle most of the time.
        if (!s->input) {
            s->input = std::make_unique<unsigned char[]>(input_capacity);
        }
        boost::system::error_code ec;
        const auto n = s->socket.read_some(
            boost::asio::buffer(s->input.get() + s->input_size, input_capacity - s->input_size),
            ec);
        if (ec == boost::asio::error::would_block || ec == boost::asio::error::interrupted) {
            if (s->input_size == 0) {
                s->input.reset();
            }
            s->socket.async_wait(
                next_layer_type::wait_read,
                [s, buffer, handler = std::move(handler)](boost::system::error_code ec) mutable {
                    if (ec) {
                        s->read_error = ec;
                        s->input_ready = s->input_size;
                    }
                    read(s, buffer, std::move(handler), false);
                });
            return;
        }
        s->input_size += n;
        if (ec) {
            s->read_error = ec;
            s->input_ready = s->input_size;
        } else {
            s->input_ready +=
                s->in_frames.scan(s->input.get() + s->input_ready, s->input_size - s->input_ready);
        }
        read(s, buffer, std::move(handler), initiating);  // or more for a split header
    }

    static void linger(const std::shared_ptr<state>& s, teardown_handler handler) {
        struct lingering {
            lingering(std::shared_ptr<state> st, teardown_handler h)
                : s(std::move(st)), handler(std::move(h)), timer(s->socket.get_executor()) {}
            std::shared_ptr<state> s;
            teardown_handler handler;
            boost::asio::steady_timer timer;
            char scratch[4096];
        };
        boost::system::error_code ignored;
        s->socket.shutdown(next_layer_type::shutdown_send, ignored);  // FIN after the close frame
        auto l = std::make_shared<lingering>(s, std::move(handler));
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
        l->s->socket.async_read_some(
            boost::asio::buffer(l->scratch), [l](boost::system::error_code ec, std::size_t) {
                if (!ec) {
                    discard_input(l);
                    return;
                }
                l->timer.cancel();
                boost::system::error_code ignored;
                l->s->socket.close(ignored);
                boost::asio::dispatch(
                    boost::asio::append(std::move(l->handler), boost::system::error_code{}));
            });
    }

    std::shared_ptr<state> state_;
};

}  // namespace chat
