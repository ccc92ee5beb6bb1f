// The reconnect supervisor of the network backends, driven by a scripted client: each
// connection attempt succeeds or throws what the script says.

// supervised_client is part of the library only with a backend that uses it.
#if defined(BROADCASTER_WITH_REDIS) || defined(BROADCASTER_WITH_POSTGRES)

#include "backends/supervised_client.hpp"

#include <broadcaster/error.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <boost/system/system_error.hpp>

#include <gtest/gtest.h>

#include <deque>
#include <functional>
#include <stdexcept>
#include <vector>

namespace broadcaster::detail {
namespace {

namespace asio = boost::asio;
using boost::system::error_code;

struct recording_sink final : backend_sink {
    std::vector<std::pair<connection_state, error_code>> states;
    void deliver(event) override {}
    void state_changed(connection_state state, error_code ec) override {
        states.emplace_back(state, ec);
    }
};

backend_config config_with_fast_backoff() {
    broadcast_options options;
    options.reconnect_backoff_min = std::chrono::milliseconds(1);
    options.reconnect_backoff_max = std::chrono::milliseconds(20);
    return backend_config{"scripted://", "scripted://", options};
}

// Attempt n runs script[n] (nothing to do: success); attempts past the script succeed.
class scripted_client final : public supervised_client,
                              public std::enable_shared_from_this<scripted_client> {
  public:
    scripted_client(asio::any_io_executor strand, std::weak_ptr<backend_sink> sink,
                    std::deque<std::function<void()>> script)
        : supervised_client(std::move(strand), connection_options(config_with_fast_backoff()),
                            std::move(sink)),
          script_(std::move(script)) {}

    void start(completion_handler handler) {
        start_supervision(std::move(handler), shared_from_this());
    }
    void stop() { stop_supervision(); }
    // Loses the current connection, as a failed read would.
    bool lose() { return mark_lost(generation_, asio::error::connection_reset); }

    int attempts = 0;
    int connected = 0;

  private:
    asio::awaitable<void> open_connections() override {
        ++attempts;
        if (!script_.empty()) {
            auto step = std::move(script_.front());
            script_.pop_front();
            if (step) {
                step();
            }
        }
        co_return;
    }
    void on_connected() override {
        ++connected;
        if (reconnecting_) {
            reconnecting_ = false;
            report(connection_state::connected, {});
        }
    }
    void close_connections() override {}

    std::deque<std::function<void()>> script_;
};

template <typename Predicate>
bool run_until(asio::io_context& io, Predicate done) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!done() && std::chrono::steady_clock::now() < deadline) {
        io.run_for(std::chrono::milliseconds(5));
        io.restart();
    }
    return done();
}

void throw_runtime_error() {
    throw std::runtime_error("not a system_error");
}

TEST(supervised_client, keeps_reconnecting_after_an_attempt_throws_something_else) {
    asio::io_context io;
    auto sink = std::make_shared<recording_sink>();
    // Attempt 1 connects; after the loss, attempt 2 throws a non-system_error and
    // attempt 3 connects again.
    auto client = std::make_shared<scripted_client>(
        asio::make_strand(io), sink,
        std::deque<std::function<void()>>{nullptr, throw_runtime_error, nullptr});
    std::optional<error_code> connect_result;
    client->start([&](error_code ec) { connect_result = ec; });
    ASSERT_TRUE(run_until(io, [&] { return client->connected == 1; }));
    ASSERT_TRUE(connect_result.has_value());
    EXPECT_FALSE(*connect_result);

    asio::post(io, [&] { EXPECT_TRUE(client->lose()); });
    ASSERT_TRUE(run_until(io, [&] { return client->connected == 2; }))
        << "supervision ended after " << client->attempts << " attempt(s)";
    EXPECT_EQ(client->attempts, 3);
    ASSERT_EQ(sink->states.size(), 2u);
    EXPECT_EQ(sink->states[0].first, connection_state::reconnecting);
    EXPECT_EQ(sink->states[1].first, connection_state::connected);

    client->stop();
    io.run_for(std::chrono::milliseconds(50));
}

TEST(supervised_client, a_first_attempt_that_throws_something_else_fails_the_connect) {
    asio::io_context io;
    auto sink = std::make_shared<recording_sink>();
    auto client = std::make_shared<scripted_client>(
        asio::make_strand(io), sink, std::deque<std::function<void()>>{throw_runtime_error});
    std::optional<error_code> connect_result;
    client->start([&](error_code ec) { connect_result = ec; });
    ASSERT_TRUE(run_until(io, [&] { return connect_result.has_value(); }))
        << "the connect never completed";
    EXPECT_EQ(*connect_result, error::protocol_error);
    EXPECT_EQ(client->attempts, 1);  // the first attempt decides the connect
}

TEST(supervised_client, reports_a_throwing_attempt_as_a_failed_one_and_backs_off) {
    asio::io_context io;
    auto sink = std::make_shared<recording_sink>();
    // After the loss: three attempts throw, each after a backoff; the fourth connects.
    auto client = std::make_shared<scripted_client>(
        asio::make_strand(io), sink,
        std::deque<std::function<void()>>{nullptr, [] { throw std::bad_alloc(); },
                                          throw_runtime_error, [] { throw 42; }, nullptr});
    client->start([](error_code) {});
    ASSERT_TRUE(run_until(io, [&] { return client->connected == 1; }));
    const auto lost_at = std::chrono::steady_clock::now();
    asio::post(io, [&] { EXPECT_TRUE(client->lose()); });
    ASSERT_TRUE(run_until(io, [&] { return client->connected == 2; }));
    // Four backoff delays of at least 5 ms (the minimum delay, 10 ms, with jitter).
    EXPECT_GE(std::chrono::steady_clock::now() - lost_at, std::chrono::milliseconds(20));
    EXPECT_EQ(client->attempts, 5);
    ASSERT_EQ(sink->states.size(), 2u);
    EXPECT_EQ(sink->states[0].first, connection_state::reconnecting);
    EXPECT_EQ(sink->states[1].first, connection_state::connected);
    client->stop();
    io.run_for(std::chrono::milliseconds(50));
}

}  // namespace
}  // namespace broadcaster::detail

#endif
