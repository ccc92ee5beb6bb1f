#include <broadcaster/error.hpp>
#include <broadcaster/url.hpp>

#include <gtest/gtest.h>

namespace broadcaster {
namespace {

TEST(redact_url, masks_the_password) {
    EXPECT_EQ(redact_url("redis://user:secret@host:6379/0"), "redis://user:***@host:6379/0");
    EXPECT_EQ(redact_url("redis://:secret@host"), "redis://:***@host");
    EXPECT_EQ(redact_url("postgres://u:p%40ss@h/db?sslmode=require"),
              "postgres://u:***@h/db?sslmode=require");
}

TEST(redact_url, leaves_urls_without_secrets_alone) {
    EXPECT_EQ(redact_url("memory://"), "memory://");
    EXPECT_EQ(redact_url("redis://user@host"), "redis://user@host");
    EXPECT_EQ(redact_url("kafka://a:9092,b:9092?linger.ms=1"), "kafka://a:9092,b:9092?linger.ms=1");
}

TEST(redact_url, masks_password_query_parameters) {
    EXPECT_EQ(redact_url("kafka://a:1?sasl.password=pw&x=1"), "kafka://a:1?sasl.password=***&x=1");
    EXPECT_EQ(redact_url("redis://h?password=pw#frag"), "redis://h?password=***#frag");
}

TEST(redact_url, masks_secrets_of_malformed_urls) {
    // An unescaped '@' in the password: everything up to the last '@' is secret.
    EXPECT_EQ(redact_url("redis://u:p@ss@host"), "redis://u:***@host");
    EXPECT_EQ(redact_url("redis://u:secret@[bad"), "redis://u:***@[bad");
    EXPECT_EQ(redact_url("bogus"), "bogus");
}

TEST(url_scheme, returns_the_lower_cased_scheme) {
    EXPECT_EQ(url_scheme("Redis://host").value(), "redis");
    EXPECT_EQ(url_scheme("memory://").value(), "memory");
    EXPECT_EQ(url_scheme("kafka://a:1,b:2").value(), "kafka");
}

TEST(url_scheme, rejects_what_is_not_a_url) {
    for (const char* bad : {"", "no scheme", "://host", "redis://ho st", "1abc://x"}) {
        const auto scheme = url_scheme(bad);
        ASSERT_FALSE(scheme) << bad;
        EXPECT_EQ(scheme.error(), error::invalid_url) << bad;
    }
}

}  // namespace
}  // namespace broadcaster
