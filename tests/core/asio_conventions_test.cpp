// Asio conventions of the public API: default completion tokens, tokens constrained
// by their completion signature, executor_type and rebind_executor (as_default_on).

#include "test_support.hpp"

#include <boost/asio/deferred.hpp>
#include <boost/asio/post.hpp>

#include <concepts>
#include <optional>
#include <type_traits>

namespace broadcaster::test {
namespace {

using asio::use_awaitable;
using boost::system::error_code;

using awaitable_executor = asio::use_awaitable_t<>::executor_with_default<asio::any_io_executor>;
using awaitable_broadcast = asio::use_awaitable_t<>::as_default_on_t<broadcast>;
using awaitable_subscriber = asio::use_awaitable_t<>::as_default_on_t<subscriber>;

// executor_type, and the default token it implies.
static_assert(std::same_as<broadcast::executor_type, asio::any_io_executor>);
static_assert(std::same_as<subscriber::executor_type, asio::any_io_executor>);
static_assert(std::same_as<default_completion_token_t<broadcast::executor_type>, asio::deferred_t>);
static_assert(
    std::same_as<default_completion_token_t<awaitable_executor>, asio::use_awaitable_t<>>);
static_assert(std::same_as<awaitable_broadcast::executor_type, awaitable_executor>);
static_assert(std::same_as<awaitable_subscriber::executor_type, awaitable_executor>);
static_assert(std::same_as<decltype(std::declval<const awaitable_broadcast&>().get_executor()),
                           awaitable_executor>);
static_assert(std::derived_from<awaitable_broadcast, broadcast>);
static_assert(std::derived_from<awaitable_subscriber, subscriber>);

// Without a token, the operations return the deferred operation, not its result.
template <typename T>
constexpr bool deferred_operation = asio::is_deferred<std::decay_t<T>>::value;
static_assert(deferred_operation<decltype(std::declval<broadcast&>().async_connect())>);
static_assert(deferred_operation<decltype(std::declval<broadcast&>().async_publish("c", "m"))>);
static_assert(deferred_operation<decltype(std::declval<subscriber&>().async_receive())>);
static_assert(requires(broadcast & bc) { bc.async_connect(); });
static_assert(requires(broadcast & bc) { bc.async_disconnect(); });
static_assert(requires(broadcast & bc) { bc.async_publish("c", "m"); });
static_assert(requires(broadcast & bc) { bc.async_subscribe("c"); });
static_assert(requires(broadcast & bc) { bc.async_subscribe("c", subscribe_options{}); });
static_assert(requires(broadcast & bc) { bc.async_subscribe_callback("c", event_callback{}); });
static_assert(requires(broadcast & bc) {
    bc.async_subscribe_callback("c", event_callback{}, subscribe_options{});
});
static_assert(requires(subscriber & sub) { sub.async_receive(); });

// A token is accepted only for the operation's completion signature: a handler
// taking the wrong arguments does not compile (rather than failing deep inside).
struct wrong_handler {
    void operator()(error_code, int) const {}
};
struct error_handler {
    void operator()(error_code) const {}
};
struct receive_handler {
    void operator()(error_code, event) const {}
};
template <typename Token>
concept connect_token = requires(broadcast& bc, Token token) {
    bc.async_connect(token);
};
template <typename Token>
concept publish_token = requires(broadcast& bc, Token token) {
    bc.async_publish("c", "m", token);
};
template <typename Token>
concept subscribe_token = requires(broadcast& bc, Token token) {
    bc.async_subscribe("c", token);
};
template <typename Token>
concept receive_token = requires(subscriber& sub, Token token) {
    sub.async_receive(token);
};
template <typename Token>
concept rebound_receive_token = requires(awaitable_subscriber& sub, Token token) {
    sub.async_receive(token);
};

static_assert(connect_token<error_handler>);
static_assert(!connect_token<wrong_handler>);
static_assert(publish_token<error_handler>);
static_assert(!publish_token<wrong_handler>);
static_assert(!subscribe_token<error_handler>);
static_assert(!subscribe_token<wrong_handler>);
static_assert(receive_token<receive_handler>);
static_assert(!receive_token<error_handler>);
static_assert(rebound_receive_token<receive_handler>);
static_assert(!rebound_receive_token<wrong_handler>);

TEST(asio_conventions, no_token_returns_an_operation_that_runs_when_awaited) {
    run_async_test([](asio::io_context& io) -> asio::awaitable<void> {
        broadcast bc(io, "memory://");
        auto connect = bc.async_connect();
        // Deferred: nothing started yet, even after the executor ran what was queued.
        co_await asio::post(io, use_awaitable);
        EXPECT_EQ(bc.state(), connection_state::disconnected);
        co_await std::move(connect)(use_awaitable);
        EXPECT_EQ(bc.state(), connection_state::connected);

        auto sub = co_await bc.async_subscribe("room")(use_awaitable);
        auto with_options =
            co_await bc.async_subscribe("room", subscribe_options(4))(use_awaitable);
        co_await bc.async_publish("room", "hello")(use_awaitable);
        const event ev = co_await sub.async_receive()(use_awaitable);
        EXPECT_EQ(ev.message(), "hello");
        EXPECT_EQ((co_await with_options.async_receive()(use_awaitable)).message(), "hello");

        // Invoked with a callback instead of awaited.
        std::optional<error_code> published;
        bc.async_publish("room", "world")([&](error_code ec) { published = ec; });
        co_await eventually([&] { return published.has_value(); });
        EXPECT_FALSE(*published);
        EXPECT_EQ((co_await sub.async_receive()(use_awaitable)).message(), "world");

        co_await bc.async_disconnect()(use_awaitable);
        EXPECT_EQ(bc.state(), connection_state::disconnected);
    });
}

TEST(asio_conventions, as_default_on_makes_use_awaitable_the_default) {
    run_async_test([](asio::io_context& io) -> asio::awaitable<void> {
        awaitable_broadcast bc(io, "memory://");
        co_await bc.async_connect();
        EXPECT_EQ(bc.state(), connection_state::connected);
        EXPECT_TRUE(bc.get_executor() == io.get_executor());

        auto sub = asio::use_awaitable_t<>::as_default_on(co_await bc.async_subscribe("room"));
        static_assert(std::same_as<decltype(sub), awaitable_subscriber>);
        EXPECT_TRUE(sub.get_executor() == io.get_executor());
        co_await bc.async_publish("room", "hello");
        EXPECT_EQ((co_await sub.async_receive()).message(), "hello");

        // An existing broadcast, rebound: the same connection, now with the new default.
        broadcast plain(io, "memory://");
        co_await plain.async_connect(use_awaitable);
        auto rebound = asio::use_awaitable_t<>::as_default_on(std::move(plain));
        static_assert(std::same_as<decltype(rebound), awaitable_broadcast>);
        EXPECT_EQ(rebound.state(), connection_state::connected);
        auto other = asio::use_awaitable_t<>::as_default_on(co_await rebound.async_subscribe("x"));
        co_await rebound.async_publish("x", "again");
        EXPECT_EQ((co_await other.async_receive()).message(), "again");
        co_await rebound.async_disconnect();
    });
}

}  // namespace
}  // namespace broadcaster::test
