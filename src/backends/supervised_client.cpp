#include "supervised_client.hpp"

#include "../completion.hpp"

#include <broadcaster/error.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/system/system_error.hpp>

#include <new>

namespace broadcaster::detail {

namespace asio = boost::asio;
using boost::system::error_code;

namespace {

// What a failed attempt reports. Anything thrown is a failure of that attempt: an
// exception that ended the loop would stop reconnecting for good, silently.
error_code attempt_error(const std::exception_ptr& thrown) {
    try {
        std::rethrow_exception(thrown);
    } catch (const boost::system::system_error& e) {
        return e.code() ? e.code() : error_code(error::protocol_error);
    } catch (const std::bad_alloc&) {
        return make_error_code(boost::system::errc::not_enough_memory);
    } catch (...) {
        return error::protocol_error;  // a reply the client could not handle
    }
}

}  // namespace

supervised_client::supervised_client(asio::any_io_executor strand,
                                     const connection_options& options,
                                     std::weak_ptr<backend_sink> sink)
    : strand_(std::move(strand)),
      sink_(std::move(sink)),
      lost_signal_(strand_),
      backoff_timer_(strand_),
      backoff_(options.reconnect_min, options.reconnect_max) {}

void supervised_client::start_supervision(completion_handler handler, std::shared_ptr<void> self) {
    connect_handler_.swap(handler);
    spawn(strand_, supervise(std::move(self)));
}

// `self` lives in the coroutine frame: it keeps the client alive while the loop runs.
asio::awaitable<void> supervised_client::supervise([[maybe_unused]] std::shared_ptr<void> self) {
    bool first = true;
    while (!stopping_) {
        error_code ec;
        try {
            ++generation_;
            co_await open_connections();
        } catch (...) {
            ec = attempt_error(std::current_exception());
        }
        if (stopping_) {
            break;
        }
        if (first) {
            first = false;
            if (ec) {
                stopping_ = true;
                close_connections();
                post_completion(std::move(connect_handler_), strand_, ec);
                co_return;
            }
            post_completion(std::move(connect_handler_), strand_, error_code());
        }
        if (!ec) {
            ready_ = true;
            try {
                on_connected();
                backoff_.reset();
            } catch (...) {
                ready_ = false;
                ec = attempt_error(std::current_exception());
            }
        }
        if (!ec) {
            lost_signal_.expires_at(asio::steady_timer::time_point::max());
            co_await lost_signal_.async_wait(asio::as_tuple(asio::use_awaitable));
            if (stopping_) {
                break;
            }
            ec = lost_reason_;
        }
        ready_ = false;
        close_connections();
        on_lost();
        if (!reconnecting_) {
            reconnecting_ = true;
            report(connection_state::reconnecting, ec);
        }
        backoff_timer_.expires_after(backoff_.next());
        co_await backoff_timer_.async_wait(asio::as_tuple(asio::use_awaitable));
    }
}

void supervised_client::stop_supervision() {
    stopping_ = true;
    ready_ = false;
    ++generation_;
    lost_signal_.cancel();
    backoff_timer_.cancel();
    if (connect_handler_) {
        post_completion(std::move(connect_handler_), strand_,
                        error_code(asio::error::operation_aborted));
    }
}

bool supervised_client::mark_lost(std::uint64_t generation, error_code ec) {
    if (generation != generation_ || !ready_) {
        return false;
    }
    ready_ = false;
    lost_reason_ = ec;
    lost_signal_.cancel();
    return true;
}

void supervised_client::report(connection_state state, error_code ec) {
    if (auto sink = sink_.lock()) {
        sink->state_changed(state, ec);
    }
}

}  // namespace broadcaster::detail
