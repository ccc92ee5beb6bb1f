// Choosing a backend by URL: the registry, its errors, and custom backends.

#include "counting_backend.hpp"
#include "test_support.hpp"

namespace broadcaster::test {
namespace {

using asio::use_awaitable;

// The system_error thrown by constructing a broadcast on `url`.
boost::system::system_error construction_error(const std::string& url) {
    asio::io_context io;
    try {
        broadcast bc(io, url);
    } catch (const boost::system::system_error& e) {
        return e;
    }
    throw std::runtime_error("no error for " + url);
}

TEST(registry, rejects_an_unknown_scheme_and_names_the_url) {
    const auto e = construction_error("mqtt://user:hunter2@host:1883");
    EXPECT_EQ(e.code(), error::unknown_scheme);
    EXPECT_NE(std::string(e.what()).find("mqtt://***@host:1883"), std::string::npos) << e.what();
    EXPECT_EQ(std::string(e.what()).find("hunter2"), std::string::npos) << e.what();
}

TEST(registry, rejects_a_malformed_url_without_leaking_the_password) {
    const auto e = construction_error("redis://user:hunter2@[::1");
    EXPECT_EQ(e.code(), error::invalid_url);
    EXPECT_EQ(std::string(e.what()).find("hunter2"), std::string::npos) << e.what();
    EXPECT_EQ(construction_error("not a url").code(), error::invalid_url);
    EXPECT_EQ(construction_error("").code(), error::invalid_url);
}

TEST(registry, rejects_malformed_memory_urls) {
    EXPECT_EQ(construction_error("memory://hub/extra/path").code(), error::invalid_url);
    EXPECT_EQ(construction_error("memory://hub?x=1").code(), error::invalid_url);
}

TEST(registry, tells_a_backend_left_out_of_the_build_apart_from_an_unknown_one) {
    register_backend("kafka", nullptr);  // make sure nothing is registered for it
    const auto e = construction_error("kafka://:hunter2@localhost:9092");
    EXPECT_EQ(e.code(), error::backend_not_built);
    EXPECT_EQ(std::string(e.what()).find("hunter2"), std::string::npos) << e.what();
}

TEST(registry, accepts_a_custom_backend_for_a_new_scheme) {
    auto calls = std::make_shared<backend_calls>();
    register_backend("Counting", [calls](const backend_config& config) {
        EXPECT_EQ(config.redacted_url, "counting://***@x");
        return std::make_unique<counting_backend>(calls);
    });
    run_async_test([&](asio::io_context& io) -> asio::awaitable<void> {
        broadcast bc(io, "counting://u:pw@x");
        EXPECT_EQ(bc.url(), "counting://***@x");
        co_await bc.async_connect(use_awaitable);
        auto sub = co_await bc.async_subscribe("c", use_awaitable);
        co_await bc.async_publish("c", "m", use_awaitable);
        EXPECT_EQ((co_await sub.async_receive(use_awaitable)).message(), "m");
    });
    EXPECT_EQ(calls->connects, 1);
    EXPECT_EQ(calls->publishes, 1);
}

TEST(registry, a_broadcast_can_be_built_from_a_backend_object) {
    auto calls = std::make_shared<backend_calls>();
    run_async_test([&](asio::io_context& io) -> asio::awaitable<void> {
        broadcast bc(io.get_executor(), std::make_unique<counting_backend>(calls));
        EXPECT_EQ(bc.url(), "custom");
        co_await bc.async_connect(use_awaitable);
        auto sub = co_await bc.async_subscribe("c", use_awaitable);
        co_await bc.async_publish("c", "m", use_awaitable);
        EXPECT_EQ((co_await sub.async_receive(use_awaitable)).message(), "m");
    });
    EXPECT_EQ(calls->subscribes_of("c"), 1);
}

}  // namespace
}  // namespace broadcaster::test
