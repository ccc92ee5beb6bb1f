// The backend contract, checked directly on the custom backend example (the conformance
// suite runs it through a broadcast): cancelling a queued publish, what disconnect and
// destruction do to pending operations, and that `attach` is not for apps.

#include "backend_access.hpp"
#include "linger_backend.hpp"  // examples/custom_backend

#include <broadcaster/error.hpp>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/strand.hpp>

#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <vector>

namespace broadcaster::test {
namespace {

namespace asio = boost::asio;
using boost::system::error_code;

// An app cannot hand a backend an executor and a sink: only the library does.
template <typename B>
concept attachable_by_apps = requires(B& b) {
    b.attach(asio::any_io_executor(), std::weak_ptr<backend_sink>());
};
static_assert(!attachable_by_apps<backend>);

struct recording_sink final : backend_sink {
    std::vector<std::string> messages;
    void deliver(event ev) override { messages.emplace_back(ev.message()); }
    void state_changed(connection_state, error_code) override {}
};

// A linger backend attached to its own strand and a recording sink, connected.
struct rig {
    explicit rig(const std::string& url) {
        linger_example::register_linger_backend();
        under_test = linger_example::make_linger_backend({url, url, {}});
        detail::backend_access::attach(*under_test, strand, sink);
        run(connect_result, [&](auto h) { under_test->async_connect(std::move(h)); });
    }

    // Starts an operation with a handler recording its result, then runs until it ran.
    template <typename Start>
    void run(std::optional<error_code>& result, Start start) {
        start([&](error_code ec) { result = ec; });
        while (!result && io.run_one() > 0) {
        }
        io.restart();
    }

    asio::io_context io;
    asio::any_io_executor strand = asio::make_strand(io);
    std::shared_ptr<recording_sink> sink = std::make_shared<recording_sink>();
    std::unique_ptr<broadcaster::backend> under_test;
    std::optional<error_code> connect_result;
};

std::string hub_url(const std::string& test, int linger_ms) {
    return "linger://" + test + "?linger_ms=" + std::to_string(linger_ms);
}

TEST(custom_backend, a_cancelled_queued_publish_completes_aborted_and_is_never_sent) {
    rig r(hub_url("cancel", 20));
    ASSERT_EQ(r.connect_result, error_code());
    std::optional<error_code> subscribed;
    r.run(subscribed, [&](auto h) { r.under_test->async_subscribe("ch", std::move(h)); });
    ASSERT_EQ(subscribed, error_code());

    asio::cancellation_signal signal;
    std::optional<error_code> cancelled;
    int cancelled_calls = 0;
    std::optional<error_code> kept;
    r.under_test->async_publish("ch", "cancelled",
                                asio::bind_cancellation_slot(signal.slot(), [&](error_code ec) {
                                    cancelled = ec;
                                    ++cancelled_calls;
                                }));
    r.under_test->async_publish("ch", "kept", [&](error_code ec) { kept = ec; });
    // Queued ahead of the 20 ms flush, which the io_context cannot run before it.
    signal.emit(asio::cancellation_type::terminal);
    while (!(cancelled && kept && !r.sink->messages.empty()) && r.io.run_one() > 0) {
    }
    EXPECT_EQ(cancelled, asio::error::operation_aborted);
    EXPECT_EQ(kept, error_code());
    EXPECT_EQ(r.sink->messages, std::vector<std::string>{"kept"});
    // A late emit finds the publish gone: nothing runs twice.
    signal.emit(asio::cancellation_type::terminal);
    r.io.poll();
    EXPECT_EQ(cancelled_calls, 1);
}

TEST(custom_backend, a_publish_cancelled_after_its_flush_completes_normally) {
    rig r(hub_url("late-cancel", 0));
    asio::cancellation_signal signal;
    std::optional<error_code> result;
    r.run(result, [&](auto h) {
        r.under_test->async_publish("ch", "sent",
                                    asio::bind_cancellation_slot(signal.slot(), std::move(h)));
    });
    signal.emit(asio::cancellation_type::terminal);
    r.io.poll();
    EXPECT_EQ(result, error_code());
}

TEST(custom_backend, disconnect_aborts_queued_publishes_before_it_completes) {
    rig r(hub_url("disconnect", 1000));
    std::vector<std::string> order;
    r.under_test->async_publish(
        "ch", "queued", [&](error_code ec) { order.push_back("publish: " + ec.message()); });
    std::optional<error_code> disconnected;
    r.run(disconnected, [&](auto h) {
        r.under_test->async_disconnect([&, h = std::move(h)](error_code ec) mutable {
            order.push_back("disconnect");
            h(ec);
        });
    });
    const std::vector<std::string> expected{
        "publish: " + error_code(asio::error::operation_aborted).message(), "disconnect"};
    EXPECT_EQ(order, expected);
    EXPECT_EQ(disconnected, error_code());

    // Disconnected: operations fail, never inline.
    std::optional<error_code> published;
    r.under_test->async_publish("ch", "x", [&](error_code ec) { published = ec; });
    EXPECT_FALSE(published.has_value());
    r.io.poll();
    EXPECT_EQ(published, error::not_connected);
}

TEST(custom_backend, destroying_the_backend_aborts_pending_publishes) {
    rig r(hub_url("destroy", 1000));
    std::optional<error_code> result;
    r.under_test->async_publish("ch", "queued", [&](error_code ec) { result = ec; });
    r.under_test.reset();
    r.io.poll();
    EXPECT_EQ(result, asio::error::operation_aborted);
}

TEST(custom_backend, rejects_urls_it_cannot_use) {
    for (const std::string url :
         {"linger://", "linger://hub?linger_ms=x", "linger://hub?linger_ms=1001",
          "linger://hub?other=1", "linger://user:secret@hub", "linger://hub:1"}) {
        try {
            linger_example::make_linger_backend({url, "linger://(redacted)", {}});
            ADD_FAILURE() << url << " accepted";
        } catch (const boost::system::system_error& e) {
            EXPECT_EQ(e.code(), error::invalid_url) << url;
            EXPECT_EQ(std::string(e.what()).find("secret"), std::string::npos);
        }
    }
}

}  // namespace
}  // namespace broadcaster::test
