#include "redis_connection.hpp"

#include "../tls/loaded_openssl.hpp"

#include <broadcaster/error.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace broadcaster::detail {

namespace asio = boost::asio;
using asio::use_awaitable;
using boost::system::error_code;
using boost::system::system_error;
using tcp = asio::ip::tcp;

namespace {
constexpr std::size_t read_chunk = 64 * 1024;

bool starts_with(std::string_view text, std::string_view prefix) {
    return text.substr(0, prefix.size()) == prefix;
}
}  // namespace

redis_connection::redis_connection(asio::any_io_executor executor, const redis_config& config,
                                   asio::ssl::context* tls)
    : executor_(std::move(executor)),
      config_(config),
      tls_context_(tls),
      socket_(executor_),
      buffer_(read_chunk) {}

asio::awaitable<void> redis_connection::open(std::string_view role, bool needs_dataset) {
    // The timer closes the socket when the deadline passes, failing whatever step is
    // in progress; `expired` tells that failure apart from others.
    auto expired = std::make_shared<bool>(false);
    asio::steady_timer deadline(executor_, config_.connect_timeout);
    deadline.async_wait([this, expired](error_code ec) {
        if (!ec) {
            *expired = true;
            close();
        }
    });
    // Until the TCP connection is up, a failure means Redis was not reached: the app
    // may retry. After it, what fails (TLS, AUTH) keeps its own code.
    bool reached = false;
    try {
        tcp::resolver resolver(executor_);
        const auto endpoints =
            co_await resolver.async_resolve(config_.host, config_.port, use_awaitable);
        co_await asio::async_connect(socket_, endpoints, use_awaitable);
        reached = true;
        socket_.set_option(tcp::no_delay(true));
        if (tls_context_) {
            tls_ = std::make_unique<asio::ssl::stream<tcp::socket&>>(socket_, *tls_context_);
            const auto& name =
                config_.tls_server_name.empty() ? config_.host : config_.tls_server_name;
            SSL_set_tlsext_host_name(tls_->native_handle(), name.c_str());
            if (config_.tls_verify) {
                tls_->set_verify_callback(asio::ssl::host_name_verification(name));
            }
            co_await tls_->async_handshake(asio::ssl::stream_base::client, use_awaitable);
        }
        co_await handshake(role, needs_dataset);
    } catch (const system_error& e) {
        if (*expired) {
            throw system_error(error::unreachable, "redis: connecting to " + config_.redacted_url +
                                                       " took longer than the connect timeout");
        }
        if (!reached) {
            throw system_error(error::unreachable, "redis: cannot reach " + config_.redacted_url +
                                                       ": " + e.code().message());
        }
        throw;
    }
    deadline.cancel();
}

asio::awaitable<void> redis_connection::handshake(std::string_view role, bool needs_dataset) {
    std::string commands;
    int replies = 0;
    if (!config_.password.empty()) {
        if (config_.user.empty()) {
            append_command(commands, {"AUTH", config_.password});
        } else {
            append_command(commands, {"AUTH", config_.user, config_.password});
        }
        ++replies;
    }
    if (config_.db != 0) {
        append_command(commands, {"SELECT", std::to_string(config_.db)});
        ++replies;
    }
    const std::string name = config_.client_name + "-" + std::string(role);
    append_command(commands, {"CLIENT", "SETNAME", name});
    ++replies;
    if (needs_dataset) {
        append_command(commands, {"PING"});  // refused with -LOADING while loading
        ++replies;
    }
    co_await write_all(std::move(commands));
    for (int i = 0; i < replies; ++i) {
        const auto reply = co_await read_reply();
        if (reply->type != REDIS_REPLY_ERROR) {
            continue;
        }
        const auto text = reply_text(*reply);
        if (starts_with(text, "NOAUTH") || starts_with(text, "WRONGPASS") ||
            text.find("password") != std::string_view::npos) {
            throw system_error(error::authentication_failed, "redis: " + std::string(text));
        }
        if (starts_with(text, "LOADING")) {
            throw system_error(error::unreachable,
                               "redis: " + config_.redacted_url + " is loading its dataset");
        }
        if (needs_dataset && i == replies - 1 && starts_with(text, "NOPERM")) {
            continue;  // a user without PING: the loading check is skipped, nothing else
        }
        throw system_error(error::broker_error, "redis: " + std::string(text));
    }
}

asio::awaitable<void> redis_connection::write_all(std::string data) {
    if (tls_) {
        co_await asio::async_write(*tls_, asio::buffer(data), use_awaitable);
    } else {
        co_await asio::async_write(socket_, asio::buffer(data), use_awaitable);
    }
}

asio::awaitable<reply_ptr> redis_connection::read_reply() {
    for (;;) {
        if (auto reply = reader_.next()) {
            co_return reply;
        }
        const auto n = tls_
                           ? co_await tls_->async_read_some(asio::buffer(buffer_), use_awaitable)
                           : co_await socket_.async_read_some(asio::buffer(buffer_), use_awaitable);
        reader_.feed(buffer_.data(), n);
    }
}

void redis_connection::close() noexcept {
    error_code ignored;
    socket_.shutdown(tcp::socket::shutdown_both, ignored);
    socket_.close(ignored);
}

}  // namespace broadcaster::detail
