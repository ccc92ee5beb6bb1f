#pragma once

#include "../tls/loaded_openssl.hpp"
#include "redis_config.hpp"
#include "resp.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>

#include <memory>
#include <vector>

namespace broadcaster::detail {

// One connection to Redis, plain TCP or TLS: connects and authenticates, then reads
// replies and writes commands. Used on one strand only.
class redis_connection {
  public:
    redis_connection(boost::asio::any_io_executor executor, const redis_config& config,
                     boost::asio::ssl::context* tls);

    // Resolves, connects, does the TLS handshake, AUTH, SELECT and CLIENT SETNAME,
    // all within the connect timeout. Throws system_error: error::unreachable (not
    // resolved, refused, or the connect timeout passed), error::authentication_failed,
    // error::broker_error, or the TLS stream's or socket's error after connecting.
    // With `needs_dataset`, a Redis still loading its dataset after a restart (which
    // answers AUTH and CLIENT, but -LOADING to data commands) fails the open as
    // `error::unreachable`: the caller retries later.
    boost::asio::awaitable<void> open(std::string_view role, bool needs_dataset = false);

    // The next reply; reads from the socket as needed. Throws system_error on
    // end of stream, socket errors and malformed input.
    boost::asio::awaitable<reply_ptr> read_reply();

    // Writes all of `buffer`; `handler(error_code, std::size_t)`.
    template <typename Handler>
    void async_write(boost::asio::const_buffer buffer, Handler&& handler) {
        if (tls_) {
            boost::asio::async_write(*tls_, buffer, std::forward<Handler>(handler));
        } else {
            boost::asio::async_write(socket_, buffer, std::forward<Handler>(handler));
        }
    }

    // Closes the socket; pending operations complete with operation_aborted.
    void close() noexcept;

  private:
    boost::asio::awaitable<void> handshake(std::string_view role, bool needs_dataset);
    boost::asio::awaitable<void> write_all(std::string data);

    boost::asio::any_io_executor executor_;
    const redis_config& config_;
    boost::asio::ssl::context* tls_context_;
    boost::asio::ip::tcp::socket socket_;
    std::unique_ptr<boost::asio::ssl::stream<boost::asio::ip::tcp::socket&>> tls_;
    resp_reader reader_;
    std::vector<char> buffer_;
};

}  // namespace broadcaster::detail
