#pragma once

#include <broadcaster/backend.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>

#include <utility>

namespace broadcaster::detail {

// `move_only` (broadcaster/backend.hpp): Asio 1.26's any_completion_handler must never
// be assigned (use swap), and every lambda that holds one captures a `move_only`.

// Runs `function`, which completes an operation whose handler's associated executor
// is `executor`: queued on `fallback` first (never inline, as Asio requires of an
// operation completing from its initiation), then run on `executor`, which tracks the
// work meanwhile. When `executor` is `fallback` itself, the second step runs inline.
template <typename Executor, typename Function>
void post_via(const Executor& executor, const boost::asio::any_io_executor& fallback,
              Function&& function) {
    boost::asio::post(fallback,
                      boost::asio::bind_executor(executor, std::forward<Function>(function)));
}

// Invokes `handler(args...)` as `post_via` describes.
template <typename Handler, typename... Args>
void post_completion(Handler handler, const boost::asio::any_io_executor& fallback, Args... args) {
    const auto executor = boost::asio::get_associated_executor(handler, fallback);
    post_via(executor, fallback,
             [once = move_only{}, handler = std::move(handler),
              ... args = std::move(args)]() mutable { std::move(handler)(std::move(args)...); });
}

// Invokes `handler(args...)` on its associated executor (`fallback` if none): inline
// when already running there. Only for code that is not inside the operation's
// initiating call (e.g. an event handler completing operations started earlier).
template <typename Handler, typename... Args>
void dispatch_completion(Handler handler, const boost::asio::any_io_executor& fallback,
                         Args... args) {
    const auto executor = boost::asio::get_associated_executor(handler, fallback);
    boost::asio::dispatch(executor, [once = move_only{}, handler = std::move(handler),
                                     ... args = std::move(args)]() mutable {
        std::move(handler)(std::move(args)...);
    });
}

}  // namespace broadcaster::detail
