#pragma once

// What the Redis and Postgres clients share: each keeps two connections of its own,
// and a supervisor loop opens them, waits until one is lost, backs off (exponential,
// with jitter) and opens them again, reporting the state changes to the broadcast.

#include "reconnect_backoff.hpp"
#include "url_options.hpp"

#include <broadcaster/backend.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/steady_timer.hpp>

#include <cstdint>
#include <exception>
#include <memory>

namespace broadcaster::detail {

// Runs a coroutine of a client without letting an exception escape into the
// io_context: they are all handled inside, this is the last resort.
template <typename Awaitable>
void spawn(const boost::asio::any_io_executor& strand, Awaitable&& work) {
    boost::asio::co_spawn(strand, std::forward<Awaitable>(work), [](std::exception_ptr) {});
}

// Everything runs on `strand_`.
class supervised_client {
  public:
    using completion_handler = backend::completion_handler;

    supervised_client(const supervised_client&) = delete;
    supervised_client& operator=(const supervised_client&) = delete;

  protected:
    supervised_client(boost::asio::any_io_executor strand, const connection_options& options,
                      std::weak_ptr<backend_sink> sink);
    virtual ~supervised_client() = default;

    // Starts the loop; `handler` completes after the first attempt, which decides the
    // connect: a wrong password or an unreachable host is the app's to know now, not a
    // reason to retry forever. `self` keeps the client alive while the loop runs.
    void start_supervision(completion_handler handler, std::shared_ptr<void> self);
    // Ends the loop; a connect still waiting completes with operation_aborted.
    void stop_supervision();
    // A connection of `generation` failed with `ec`. False if that is stale news (an
    // older connection, or a loss already noticed); else the loop reconnects.
    bool mark_lost(std::uint64_t generation, boost::system::error_code ec);
    void report(connection_state state, boost::system::error_code ec);

    // Opens both connections (generation_ is already the new one); throws system_error.
    // Anything else it throws fails the attempt too (protocol_error, or
    // not_enough_memory for bad_alloc): the loop backs off and tries again.
    virtual boost::asio::awaitable<void> open_connections() = 0;
    // Both are open (ready_ is set): start reading, restore the subscriptions. If it
    // throws, the attempt failed as above.
    virtual void on_connected() = 0;
    virtual void close_connections() = 0;
    // After a loss, once the connections are closed.
    virtual void on_lost() {}

    const boost::asio::any_io_executor strand_;
    const std::weak_ptr<backend_sink> sink_;
    std::uint64_t generation_ = 0;  // bumped per connection attempt: stale callbacks see it
    bool ready_ = false;            // both connections are up
    bool stopping_ = false;
    bool reconnecting_ = false;  // "reconnecting" reported, "connected" not yet

  private:
    boost::asio::awaitable<void> supervise(std::shared_ptr<void> self);

    completion_handler connect_handler_;
    boost::system::error_code lost_reason_;
    boost::asio::steady_timer lost_signal_;  // cancelled when a connection is lost
    boost::asio::steady_timer backoff_timer_;
    reconnect_backoff backoff_;
};

}  // namespace broadcaster::detail
