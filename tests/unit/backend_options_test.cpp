// The network backends' URL options: the reconnect backoff's lower bound, and error
// messages that never quote what may be a piece of a password.

#include "backends/reconnect_backoff.hpp"
#include "backends/url_options.hpp"
#include "url_detail.hpp"
#ifdef BROADCASTER_WITH_REDIS
#include "backends/redis/redis_config.hpp"
#endif
#ifdef BROADCASTER_WITH_POSTGRES
#include "backends/postgres/postgres_config.hpp"
#endif
#ifdef BROADCASTER_WITH_KAFKA
#include "backends/kafka/kafka_config.hpp"
#endif

#include <broadcaster/error.hpp>
#include <broadcaster/url.hpp>

#include <boost/system/system_error.hpp>

#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>

namespace broadcaster::detail {
namespace {

using namespace std::chrono_literals;

backend_config config_for(const std::string& url, broadcast_options options = {}) {
    return backend_config{url, redact_url(url), options};
}

TEST(reconnect_backoff, never_retries_without_a_delay) {
    // reconnect_min_ms=0 used to mean no delay at all: a busy loop while the broker is away.
    reconnect_backoff zero(0ms, 0ms);
    for (int i = 0; i < 100; ++i) {
        EXPECT_GE(zero.next(), min_reconnect_delay / 2);
    }
    reconnect_backoff tiny(1ms, 1ms);
    EXPECT_GE(tiny.next(), min_reconnect_delay / 2);
    EXPECT_LE(tiny.next(), min_reconnect_delay);
}

TEST(reconnect_backoff, doubles_up_to_the_maximum) {
    reconnect_backoff backoff(100ms, 400ms);
    const auto first = backoff.next();
    EXPECT_GE(first, 50ms);
    EXPECT_LE(first, 100ms);
    backoff.next();
    for (int i = 0; i < 10; ++i) {
        const auto later = backoff.next();
        EXPECT_GE(later, 200ms);
        EXPECT_LE(later, 400ms);
    }
    backoff.reset();
    EXPECT_LE(backoff.next(), 100ms);
}

TEST(connection_options, raise_a_zero_reconnect_delay_to_the_minimum) {
    broadcast_options zero;
    zero.reconnect_backoff_min = 0ms;
    zero.reconnect_backoff_max = 0ms;
    connection_options from_options(config_for("x://h", zero));
    from_options.finish();
    EXPECT_EQ(from_options.reconnect_min, min_reconnect_delay);
    EXPECT_EQ(from_options.reconnect_max, min_reconnect_delay);

    const auto config = config_for("x://h?reconnect_min_ms=0&reconnect_max_ms=0");
    connection_options from_url(config);
    EXPECT_TRUE(from_url.take(config, "reconnect_min_ms", "0"));
    EXPECT_TRUE(from_url.take(config, "reconnect_max_ms", "0"));
    from_url.finish();
    EXPECT_EQ(from_url.reconnect_min, min_reconnect_delay);
    EXPECT_EQ(from_url.reconnect_max, min_reconnect_delay);
}

// Every backend's URL parser applies the minimum.
TEST(connection_options, every_backend_applies_the_minimum_reconnect_delay) {
    std::vector<std::function<connection_options()>> parsers;
#ifdef BROADCASTER_WITH_REDIS
    parsers.emplace_back(
        [] { return parse_redis_url(config_for("redis://h?reconnect_min_ms=0")); });
#endif
#ifdef BROADCASTER_WITH_POSTGRES
    parsers.emplace_back(
        [] { return parse_postgres_url(config_for("postgres://h/db?reconnect_min_ms=0")); });
#endif
#ifdef BROADCASTER_WITH_KAFKA
    parsers.emplace_back(
        [] { return parse_kafka_url(config_for("kafka://h:1?reconnect_min_ms=0")); });
#endif
    for (const auto& parse : parsers) {
        const auto options = parse();
        EXPECT_EQ(options.reconnect_min, min_reconnect_delay) << options.redacted_url;
        EXPECT_GE(options.reconnect_max, min_reconnect_delay) << options.redacted_url;
    }
}

TEST(url_options, errors_name_the_option_but_not_its_value) {
    const auto config = config_for("x://h");
    try {
        option_number(config, "connect_timeout_ms", "Zq1secret");
        FAIL() << "accepted";
    } catch (const boost::system::system_error& e) {
        EXPECT_EQ(e.code(), error::invalid_url);
        EXPECT_NE(std::string(e.what()).find("connect_timeout_ms"), std::string::npos);
        EXPECT_EQ(std::string(e.what()).find("Zq1secret"), std::string::npos) << e.what();
    }
    EXPECT_THROW(option_bool(config, "tls_verify", "Zq1secret"), boost::system::system_error);
}

TEST(url_options, know_which_values_are_harmless) {
    EXPECT_TRUE(harmless_option("kafka.linger.ms"));
    EXPECT_TRUE(harmless_option("connect_timeout_ms"));
    EXPECT_FALSE(harmless_option("kafka.sasl.password"));
    EXPECT_FALSE(harmless_option("kafka.sasl.oauthbearer.client.secret"));
    EXPECT_FALSE(harmless_option("kafka.ssl.key.pem"));
    EXPECT_FALSE(harmless_option("pass%77ord"));
    EXPECT_FALSE(harmless_option("anything.else"));
}

// What a parser throws for `url` never contains any of `secrets`.
void expect_no_leak(const std::function<void(const backend_config&)>& parse, const std::string& url,
                    const std::vector<std::string>& secrets) {
    const auto config = config_for(url);
    try {
        parse(config);
    } catch (const boost::system::system_error& e) {
        for (const auto& secret : secrets) {
            EXPECT_EQ(std::string(e.what()).find(secret), std::string::npos)
                << "'" << secret << "' of " << url << " leaked: " << e.what();
        }
        return;
    }
    // Accepted: the redacted URL (what logs show) must not leak either.
    for (const auto& secret : secrets) {
        EXPECT_EQ(config.redacted_url.find(secret), std::string::npos) << config.redacted_url;
    }
}

// Passwords with a raw '/', '?' or '#' cut the URL where a URL parser sees the end of
// the authority: what follows lands in the port, the path or the query.
const std::vector<std::string> mangling_urls = {
    "{scheme}://Usr9:Zq1/Yw2@host",        "{scheme}://Usr9:1234/Yw2@host",
    "{scheme}://Usr9:99999/Yw2@host",      "{scheme}://:Zq1?Yw2#Xe3@host",
    "{scheme}://Usr9:0/Yw2@host",          "{scheme}://Usr9:[Zq1/Yw2@host",
    "{scheme}://Usr9:Zq1]/Yw2@host",       "{scheme}://:Zq1?Yw2=Xe3&Vr4=Ut5@host",
    "{scheme}://:Zq1?tls_verify=Yw2@host", "{scheme}://:12?connect_timeout_ms=Yw2@host",
};

void check_parser(const std::string& scheme,
                  const std::function<void(const backend_config&)>& parse) {
    for (auto url : mangling_urls) {
        url.replace(url.find("{scheme}"), 8, scheme);
        expect_no_leak(parse, url, {"Zq1", "Yw2", "Xe3", "Vr4", "Ut5", "1234", "99999", "Usr9"});
        // Refused, not read as another host: the message says what to do.
        try {
            parse(config_for(url));
            ADD_FAILURE() << url << " was accepted";
        } catch (const boost::system::system_error& e) {
            EXPECT_EQ(e.code(), error::invalid_url) << url;
            EXPECT_NE(std::string(e.what()).find("percent-encode"), std::string::npos)
                << url << ": " << e.what();
        }
    }
    // Percent-encoded, the same characters are fine.
    EXPECT_NO_THROW(parse(config_for(scheme + "://us%2Fer:Zq1%2FYw2%3F%23%40@h:1")));
}

#ifdef BROADCASTER_WITH_REDIS
TEST(redis_config, errors_never_quote_a_piece_of_a_password) {
    check_parser("redis", [](const backend_config& c) { parse_redis_url(c); });
}
#endif
#ifdef BROADCASTER_WITH_POSTGRES
TEST(postgres_config, errors_never_quote_a_piece_of_a_password) {
    check_parser("postgres", [](const backend_config& c) { parse_postgres_url(c); });
}

// Refused when parsing, as a configuration error, not at connect as if unreachable.
TEST(postgres_config, an_option_libpq_does_not_know_is_an_invalid_url) {
    try {
        parse_postgres_url(config_for("postgres://u:Zq1@h/db?applicaton_name=x"));
        ADD_FAILURE() << "accepted";
    } catch (const boost::system::system_error& e) {
        EXPECT_EQ(e.code(), error::invalid_url);
        EXPECT_NE(std::string(e.what()).find("applicaton_name"), std::string::npos) << e.what();
        EXPECT_EQ(std::string(e.what()).find("Zq1"), std::string::npos) << e.what();
    }
    EXPECT_NO_THROW(parse_postgres_url(config_for("postgres://h/db?application_name=x")));
    EXPECT_NO_THROW(parse_postgres_url(config_for("postgresql://h/db?sslmode=disable")));
}
#endif
#ifdef BROADCASTER_WITH_KAFKA
TEST(kafka_config, errors_never_quote_a_piece_of_a_password) {
    check_parser("kafka", [](const backend_config& c) { parse_kafka_url(c); });
    // librdkafka's message quotes the refused value: only for harmless settings.
    expect_no_leak([](const backend_config& c) { parse_kafka_url(c); },
                   "kafka://h:1?kafka.sasl.oauthbearer.config=Zq1secret&kafka.sasl.mechanisms=Yw2",
                   {"Zq1secret"});
    expect_no_leak([](const backend_config& c) { parse_kafka_url(c); },
                   "kafka://h:1?kafka.ssl.key.pem=Zq1secret", {"Zq1secret"});
}
#endif

}  // namespace
}  // namespace broadcaster::detail
