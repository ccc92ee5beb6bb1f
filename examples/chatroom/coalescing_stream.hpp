#pragma once

// A TCP stream that can hold back writes and send them together: the WebSocket layer
// above it writes one frame per call, and a busy room would otherwise cost one system
// call per frame per client. While corked, writes are copied into a buffer and
// complete at once; `async_flush` sends the buffer with one write and uncorks.
//
// Beast serializes the writes it makes (frames, pongs, the close frame) but knows
// nothing of the flush, so the stream stays corked while a flush is on the wire: a
// write made meanwhile (e.g. a pong) is buffered behind it and flushed next, never
// interleaved.

#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/websocket/teardown.hpp>

#include <string>
#include <utility>

namespace chat {

class coalescing_stream {
  public:
    using executor_type = boost::beast::tcp_stream::executor_type;
    using next_layer_type = boost::beast::tcp_stream;

    explicit coalescing_stream(boost::beast::tcp_stream next) : next_(std::move(next)) {}

    executor_type get_executor() noexcept { return next_.get_executor(); }
    next_layer_type& next_layer() noexcept { return next_; }

    // From now on writes are buffered, until `async_flush` completes.
    void cork() noexcept { corked_ = true; }
    bool corked() const noexcept { return corked_; }

    // Sends everything buffered (one write per round), then uncorks.
    template <typename Token>
    auto async_flush(Token&& token) {
        return boost::asio::async_initiate<Token, void(boost::system::error_code)>(
            [this](auto handler) { flush(std::move(handler)); }, token);
    }

    template <typename MutableBuffers, typename Token>
    auto async_read_some(const MutableBuffers& buffers, Token&& token) {
        return next_.async_read_some(buffers, std::forward<Token>(token));
    }

    template <typename ConstBuffers, typename Token>
    auto async_write_some(const ConstBuffers& buffers, Token&& token) {
        return boost::asio::async_initiate<Token, void(boost::system::error_code, std::size_t)>(
            [this](auto handler, const ConstBuffers& data) {
                if (!corked_) {
                    next_.async_write_some(data, std::move(handler));
                    return;
                }
                const auto size = boost::asio::buffer_size(data);
                const auto old = pending_.size();
                pending_.resize(old + size);
                boost::asio::buffer_copy(boost::asio::buffer(pending_.data() + old, size), data);
                const auto executor = boost::asio::get_associated_executor(handler, get_executor());
                boost::asio::post(get_executor(),
                                  boost::asio::bind_executor(
                                      executor, [handler = std::move(handler), size]() mutable {
                                          std::move(handler)(boost::system::error_code(), size);
                                      }));
            },
            token, buffers);
    }

    // The WebSocket closing handshake tears down the TCP stream underneath.
    friend void teardown(boost::beast::role_type role, coalescing_stream& stream,
                         boost::system::error_code& ec) {
        using boost::beast::websocket::teardown;
        teardown(role, stream.next_.socket(), ec);
    }
    template <typename Handler>
    friend void async_teardown(boost::beast::role_type role, coalescing_stream& stream,
                               Handler&& handler) {
        using boost::beast::websocket::async_teardown;
        async_teardown(role, stream.next_.socket(), std::forward<Handler>(handler));
    }

  private:
    template <typename Handler>
    void flush(Handler handler) {
        if (pending_.empty()) {
            corked_ = false;
            const auto executor = boost::asio::get_associated_executor(handler, get_executor());
            boost::asio::post(
                get_executor(),
                boost::asio::bind_executor(executor, [handler = std::move(handler)]() mutable {
                    std::move(handler)(boost::system::error_code());
                }));
            return;
        }
        flushing_.swap(pending_);
        const auto executor = boost::asio::get_associated_executor(handler, get_executor());
        boost::asio::async_write(
            next_, boost::asio::buffer(flushing_),
            boost::asio::bind_executor(
                executor, [this, handler = std::move(handler)](boost::system::error_code ec,
                                                               std::size_t) mutable {
                    flushing_.clear();
                    if (ec) {
                        pending_.clear();
                        corked_ = false;
                        std::move(handler)(ec);
                        return;
                    }
                    flush(std::move(handler));  // what was written meanwhile
                }));
    }

    boost::beast::tcp_stream next_;
    bool corked_ = false;
    std::string pending_;   // buffered while corked
    std::string flushing_;  // on the wire
};

}  // namespace chat
