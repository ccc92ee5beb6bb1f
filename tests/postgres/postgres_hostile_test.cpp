// The Postgres backend against input it does not control: notifications that other
// clients of the same database send on a subscribed channel. Plain NOTIFY is how
// other apps talk to a broadcaster instance, so whatever they send must neither cost
// the connection nor the notifications of other channels.

#include "backends/postgres/postgres_backend.hpp"
#include "test_servers.hpp"
#include "test_support.hpp"

namespace broadcaster::test {
namespace {

using boost::system::error_code;

struct hostile_sink final : backend_sink {
    std::vector<event> events;
    std::vector<connection_state> states;
    void deliver(event ev) override { events.push_back(std::move(ev)); }
    void state_changed(connection_state state, error_code) override { states.push_back(state); }
    bool received(const std::string& channel, const std::string& message) const {
        return std::any_of(events.begin(), events.end(), [&](const event& ev) {
            return ev.channel() == channel && ev.message() == message;
        });
    }
};

// A cluster of its own: the test sends NOTIFYs with psql, as another app would.
postgres_server& hostile_server() {
    static postgres_server server;
    return server;
}

asio::awaitable<error_code> call(std::function<void(backend::completion_handler)> op) {
    std::optional<error_code> result;
    op([&](error_code ec) { result = ec; });
    co_await eventually([&] { return result.has_value(); }, 10s);
    co_return *result;
}

// A payload starting with the reference marker (0x1F) that is no reference of ours
// made the listener's payload fetch fail ("invalid input syntax for type bigint", or
// "relation does not exist" before any large message was stored), and that failure
// was taken for a lost connection: a reconnect per such NOTIFY, and the notifications
// sent meanwhile lost for every channel.
TEST(postgres_hostile, foreign_marker_payloads_cost_neither_connection_nor_messages) {
    auto& server = hostile_server();
    // A payload table that does not exist yet: a well-formed reference fails too.
    const auto url = server.url() + "?payload_table=" + unique_name("absent").substr(0, 40);
    run_async_test([&](asio::io_context& io) -> asio::awaitable<void> {
        auto sink = std::make_shared<hostile_sink>();
        backend_config config{url, url, {}};
        auto pg = detail::make_postgres_backend(config);
        pg->attach(io.get_executor(), sink);
        BROADCASTER_REQUIRE(!co_await call([&](auto h) { pg->async_connect(std::move(h)); }));
        const auto channel = unique_name("hostile");
        const auto other = unique_name("bystander");
        BROADCASTER_REQUIRE(
            !co_await call([&](auto h) { pg->async_subscribe(channel, std::move(h)); }));
        BROADCASTER_REQUIRE(
            !co_await call([&](auto h) { pg->async_subscribe(other, std::move(h)); }));

        // All in one transaction, so they arrive together, with the bystander's after.
        const std::string hostile = "BEGIN; SELECT pg_notify('" + channel +
                                    "', chr(31) || 'not a number'); SELECT pg_notify('" + channel +
                                    "', chr(31) || '99999999999999999999999'); SELECT "
                                    "pg_notify('" +
                                    channel + "', chr(31) || '1'); SELECT pg_notify('" + other +
                                    "', 'still here'); COMMIT;";
        BROADCASTER_REQUIRE(server.sql(hostile) == 0);
        co_await eventually([&] { return sink->received(other, "still here"); }, 10s);
        // Not references: delivered as sent.
        EXPECT_TRUE(sink->received(channel, "\x1fnot a number"));
        EXPECT_TRUE(sink->received(channel,
                                   "\x1f"
                                   "99999999999999999999999"));
        EXPECT_TRUE(sink->states.empty()) << "the listener's connection was dropped";

        // And the connection still carries our own messages, inline and stored.
        const std::string large(9000, 'x');
        EXPECT_FALSE(
            co_await call([&](auto h) { pg->async_publish(channel, "ok", std::move(h)); }));
        EXPECT_FALSE(
            co_await call([&](auto h) { pg->async_publish(channel, large, std::move(h)); }));
        co_await eventually([&] { return sink->received(channel, large); }, 10s);
        EXPECT_TRUE(sink->received(channel, "ok"));
        EXPECT_TRUE(sink->states.empty()) << "the listener's connection was dropped";
        co_await call([&](auto h) { pg->async_disconnect(std::move(h)); });
    });
}

}  // namespace
}  // namespace broadcaster::test
