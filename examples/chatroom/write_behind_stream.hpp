#pragma once

// A TCP socket whose writes are appended to a buffer and complete at once; the buffer
// goes out in the background, everything written meanwhile in one system call.
//
// Why: the WebSocket layer writes one frame per call. Written synchronously into this
// buffer, a batch of frames for one client costs no asynchronous operation per frame
// and one `sendmsg` in all. Every writer goes through the same buffer (our frames,
// Beast's pongs and close frames), so frames never interleave on the wire.
//
// Back-pressure: the buffer is not bounded by itself; whoever writes in bulk waits
// for `async_wait_flushed` before writing more (the chat writer does), so it holds at
// most one batch beyond what is on the wire.
//
// The buffers live in state shared with the operations in flight, so that a flush
// completing after the stream is gone touches nothing that was freed.

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/append.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/websocket/teardown.hpp>

#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace chat {

class write_behind_stream {
  public:
    using next_layer_type = boost::asio::ip::tcp::socket;
    using executor_type = next_layer_type::executor_type;

    explicit write_behind_stream(next_layer_type socket)
        : state_(std::make_shared<state>(std::move(socket))) {}

    executor_type get_executor() noexcept { return state_->socket.get_executor(); }
    next_layer_type& next_layer() noexcept { return state_->socket; }

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

    template <typename MutableBuffers, typename Token>
    auto async_read_some(const MutableBuffers& buffers, Token&& token) {
        return state_->socket.async_read_some(buffers, std::forward<Token>(token));
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

    // The WebSocket closing handshake tears down the TCP stream underneath, after the
    // buffered bytes (the close frame among them) have gone out.
    friend void teardown(boost::beast::role_type role, write_behind_stream& stream,
                         boost::system::error_code& ec) {
        using boost::beast::websocket::teardown;
        teardown(role, stream.state_->socket, ec);
    }
    template <typename Handler>
    friend void async_teardown(boost::beast::role_type role, write_behind_stream& stream,
                               Handler&& handler) {
        stream.async_wait_flushed([&stream, role, handler = std::forward<Handler>(handler)](
                                      boost::system::error_code) mutable {
            using boost::beast::websocket::async_teardown;
            async_teardown(role, stream.state_->socket, std::move(handler));
        });
    }

  private:
    using waiter_type = boost::asio::any_completion_handler<void(boost::system::error_code)>;

    struct state {
        explicit state(next_layer_type s) : socket(std::move(s)) {}
        bool idle() const noexcept { return pending.empty() && !flush_scheduled; }

        next_layer_type socket;
        std::string pending;           // written, not yet handed to the socket
        std::string on_the_wire;       // in the socket's async_write
        bool flush_scheduled = false;  // a flush is posted or in flight
        boost::system::error_code error;
        std::vector<waiter_type> flushed_waiters;
    };

    template <typename ConstBuffers>
    std::size_t append(const ConstBuffers& buffers) {
        auto& s = *state_;
        const auto size = boost::asio::buffer_size(buffers);
        s.pending.reserve(s.pending.size() + size);
        for (auto it = boost::asio::buffer_sequence_begin(buffers);
             it != boost::asio::buffer_sequence_end(buffers); ++it) {
            const boost::asio::const_buffer piece = *it;
            s.pending.append(static_cast<const char*>(piece.data()), piece.size());
        }
        if (!s.flush_scheduled) {
            // Posted, not started: what the caller writes next joins this flush.
            s.flush_scheduled = true;
            boost::asio::post(get_executor(), [state = state_] { flush(state); });
        }
        return size;
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
        if (s->pending.empty() || s->error) {
            s->flush_scheduled = false;
            release(s->pending);
            auto waiters = std::exchange(s->flushed_waiters, {});
            for (auto& waiter : waiters) {
                boost::asio::dispatch(boost::asio::append(std::move(waiter), s->error));
            }
            return;
        }
        s->on_the_wire.swap(s->pending);
        boost::asio::async_write(s->socket, boost::asio::buffer(s->on_the_wire),
                                 [s](boost::system::error_code ec, std::size_t) {
                                     release(s->on_the_wire);
                                     if (ec && !s->error) {
                                         s->error = ec;
                                     }
                                     flush(s);  // what was written meanwhile
                                 });
    }

    std::shared_ptr<state> state_;
};

}  // namespace chat
