// The broadcaster error codes and the conditions that group them: every code has its
// own message, its documented conditions, and the Asio codes that reach an app are
// classified too.

#include <broadcaster/error.hpp>

#include <boost/asio/error.hpp>
#if defined(BROADCASTER_WITH_REDIS)  // its TLS brings OpenSSL, which the ssl codes need
#include <boost/asio/ssl/error.hpp>
#endif

#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

namespace broadcaster {
namespace {

using boost::system::error_code;
using boost::system::error_condition;

constexpr error first_code = error::invalid_url;
constexpr error last_code = error::backend_unavailable;

std::vector<error> every_code() {
    std::vector<error> codes;
    for (int v = static_cast<int>(first_code); v <= static_cast<int>(last_code); ++v) {
        codes.push_back(static_cast<error>(v));
    }
    return codes;
}

const std::vector<condition> every_condition{
    condition::transient,       condition::configuration, condition::refused_by_broker,
    condition::invalid_request, condition::usage,         condition::subscription_ended};

// The table of docs/errors.md, as the library must answer it.
std::set<condition> documented(error e) {
    switch (e) {
        case error::invalid_url:
        case error::unknown_scheme:
        case error::backend_not_built:
        case error::history_not_supported:
        case error::patterns_not_supported:
        case error::backend_unavailable:
            return {condition::configuration};
        case error::not_connected:
        case error::receive_in_progress:
            return {condition::usage};
        case error::payload_too_large:
        case error::invalid_channel:
        case error::invalid_position:
            return {condition::invalid_request};
        case error::subscriber_overflow:
        case error::end_of_stream:
        case error::callback_failed:
        case error::history_gap:
            return {condition::subscription_ended};
        case error::authentication_failed:
            return {condition::configuration, condition::refused_by_broker};
        case error::subscription_refused:
            return {condition::subscription_ended, condition::refused_by_broker};
        case error::broker_error:
            return {condition::refused_by_broker};
        case error::protocol_error:
            return {};
        case error::timeout:
        case error::unreachable:
        case error::connection_lost:
        case error::reconnect_timeout:
        case error::cluster_unavailable:
            return {condition::transient};
    }
    return {};
}

TEST(error, values_already_published_keep_their_numbers) {
    EXPECT_EQ(static_cast<int>(error::invalid_url), 1);
    EXPECT_EQ(static_cast<int>(error::not_connected), 4);
    EXPECT_EQ(static_cast<int>(error::callback_failed), 14);
    EXPECT_EQ(static_cast<int>(error::unreachable), 15);
    EXPECT_EQ(static_cast<int>(error::connection_lost), 16);
    EXPECT_EQ(static_cast<int>(error::reconnect_timeout), 17);
    EXPECT_EQ(static_cast<int>(error::cluster_unavailable), 18);
    EXPECT_EQ(static_cast<int>(error::history_not_supported), 19);
    EXPECT_EQ(static_cast<int>(error::history_gap), 20);
    EXPECT_EQ(static_cast<int>(error::invalid_position), 21);
    EXPECT_EQ(static_cast<int>(error::subscription_refused), 22);
    EXPECT_EQ(static_cast<int>(error::patterns_not_supported), 23);
    EXPECT_EQ(static_cast<int>(error::backend_unavailable), 24);
}

TEST(error, every_code_has_a_message_of_its_own) {
    std::set<std::string> messages;
    for (const auto e : every_code()) {
        const auto text = make_error_code(e).message();
        EXPECT_NE(text, "unknown broadcaster error") << static_cast<int>(e);
        EXPECT_TRUE(messages.insert(text).second) << "shared message: " << text;
    }
    EXPECT_EQ(error_code(error::not_connected).category().name(), std::string("broadcaster"));
    EXPECT_EQ(make_error_code(static_cast<error>(999)).message(), "unknown broadcaster error");
}

TEST(error, every_code_is_in_the_documented_conditions_and_no_other) {
    for (const auto e : every_code()) {
        const error_code ec = e;
        const auto wanted = documented(e);
        for (const auto c : every_condition) {
            EXPECT_EQ(ec == c, wanted.contains(c))
                << ec.message() << " vs " << make_error_condition(c).message();
        }
        // The default condition is the first documented one, or the code itself.
        const auto fallback = ec.default_error_condition();
        if (wanted.empty()) {
            EXPECT_EQ(fallback.category(), error_category());
            EXPECT_EQ(fallback.value(), static_cast<int>(e));
        } else {
            EXPECT_EQ(fallback.category(), condition_category());
            EXPECT_TRUE(wanted.contains(static_cast<condition>(fallback.value())));
        }
    }
    // The one code in two groups defaults to the one that says what to do.
    EXPECT_EQ(error_code(error::authentication_failed).default_error_condition(),
              condition::configuration);
}

TEST(error, conditions_have_messages_and_their_own_category) {
    std::set<std::string> messages;
    for (const auto c : every_condition) {
        const error_condition condition = c;
        EXPECT_EQ(condition.category().name(), std::string("broadcaster.condition"));
        EXPECT_TRUE(messages.insert(condition.message()).second);
    }
}

TEST(error, asio_transport_errors_are_classified) {
    namespace asio_error = boost::asio::error;
    const std::vector<error_code> transient {
        asio_error::connection_refused, asio_error::connection_reset,
            asio_error::connection_aborted, asio_error::timed_out, asio_error::host_unreachable,
            asio_error::network_unreachable, asio_error::broken_pipe, asio_error::eof,
            asio_error::host_not_found_try_again,
#if defined(BROADCASTER_WITH_REDIS)
            boost::asio::ssl::error::stream_truncated,
#endif
    };
    for (const auto& ec : transient) {
        EXPECT_EQ(ec, condition::transient) << ec.message();
        EXPECT_NE(ec, condition::configuration) << ec.message();
    }
    const std::vector<error_code> configuration {
        asio_error::host_not_found, asio_error::service_not_found,
#if defined(BROADCASTER_WITH_REDIS)
            error_code(336151574, boost::asio::error::get_ssl_category()),  // a handshake alert
#endif
    };
    for (const auto& ec : configuration) {
        EXPECT_EQ(ec, condition::configuration) << ec.message();
        EXPECT_NE(ec, condition::transient) << ec.message();
    }
    // What the app did itself, and what is not a transport failure, is in no group.
    for (const error_code ec : {error_code(asio_error::operation_aborted),
                                error_code(asio_error::invalid_argument), error_code()}) {
        for (const auto c : every_condition) {
            EXPECT_NE(ec, c) << ec.message();
        }
    }
}

TEST(error, codes_compare_with_conditions_both_ways_and_through_system_error) {
    const error_code ec = error::reconnect_timeout;
    EXPECT_TRUE(condition::transient == ec);
    EXPECT_TRUE(ec != condition::usage);
    try {
        throw_if_error(ec, "publish");
        FAIL();
    } catch (const boost::system::system_error& e) {
        EXPECT_EQ(e.code(), condition::transient);
    }
}

}  // namespace
}  // namespace broadcaster
