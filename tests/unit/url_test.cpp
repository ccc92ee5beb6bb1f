#include <broadcaster/error.hpp>
#include <broadcaster/url.hpp>

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace broadcaster {
namespace {

TEST(redact_url, masks_the_whole_user_information) {
    EXPECT_EQ(redact_url("redis://user:secret@host:6379/0"), "redis://***@host:6379/0");
    EXPECT_EQ(redact_url("redis://:secret@host"), "redis://***@host");
    EXPECT_EQ(redact_url("redis://user@host"), "redis://***@host");
    EXPECT_EQ(redact_url("postgres://u:p%40ss@h/db?sslmode=require"),
              "postgres://***@h/db?sslmode=require");
    EXPECT_EQ(redact_url("kafka://u:p@a:9092,b:9092?kafka.linger.ms=1"),
              "kafka://***@a:9092,b:9092?kafka.linger.ms=1");
}

TEST(redact_url, leaves_urls_without_secrets_alone) {
    EXPECT_EQ(redact_url("memory://"), "memory://");
    EXPECT_EQ(redact_url("memory://room"), "memory://room");
    EXPECT_EQ(redact_url("redis://host:6379/2?client_name=app&connect_timeout_ms=500"),
              "redis://host:6379/2?client_name=app&connect_timeout_ms=500");
    EXPECT_EQ(redact_url("kafka://a:9092,b:9092?kafka.linger.ms=1&producer.acks=all"),
              "kafka://a:9092,b:9092?kafka.linger.ms=1&producer.acks=all");
    EXPECT_EQ(redact_url("kafka://a:9092?kafka.linger.ms=1&topic_prefix=app."),
              "kafka://a:9092?kafka.linger.ms=1&topic_prefix=app.");
    EXPECT_EQ(redact_url("postgres://[::1]:5432/db?payload_table=t&reconnect_min_ms=10"),
              "postgres://[::1]:5432/db?payload_table=t&reconnect_min_ms=10");
}

TEST(redact_url, masks_every_option_value_not_known_to_be_harmless) {
    EXPECT_EQ(redact_url("kafka://a:1?kafka.sasl.password=pw&kafka.linger.ms=1"),
              "kafka://a:1?kafka.sasl.password=***&kafka.linger.ms=1");
    EXPECT_EQ(redact_url("kafka://a:1?kafka.sasl.oauthbearer.client.secret=s3"),
              "kafka://a:1?kafka.sasl.oauthbearer.client.secret=***");
    EXPECT_EQ(redact_url("kafka://a:1?kafka.ssl.key.pem=PEMDATA&consumer.ssl.key.password=kp"),
              "kafka://a:1?kafka.ssl.key.pem=***&consumer.ssl.key.password=***");
    EXPECT_EQ(redact_url("kafka://a:1?kafka.sasl.username=bob"),
              "kafka://a:1?kafka.sasl.username=***");
    // Names are compared as the backends see them: percent-decoded.
    EXPECT_EQ(redact_url("redis://h?pass%77ord=pw"), "redis://h?pass%77ord=***");
    EXPECT_EQ(redact_url("redis://h?PASSWORD=pw"), "redis://h?PASSWORD=***");
    EXPECT_EQ(redact_url("redis://h?client%5Fname=app"), "redis://h?client%5Fname=app");
    // Unknown options, and a pair without '=' (the tail of a value cut by a raw '&').
    EXPECT_EQ(redact_url("redis://h?bogus=1&token=t0k"), "redis://h?***&***");
    EXPECT_EQ(redact_url("kafka://a:1?kafka.sasl.password=ab&cd=ef&kafka.acks=1"),
              "kafka://a:1?kafka.sasl.password=***&***&kafka.acks=1");
    EXPECT_EQ(redact_url("postgres://h/db?password=ab&cdef"), "postgres://h/db?password=***&***");
    EXPECT_EQ(redact_url("postgres://h/db?sslpassword=x&sslkey=/k"),
              "postgres://h/db?sslpassword=***&sslkey=***");
    EXPECT_EQ(redact_url("redis://h?&&x="), "redis://h?&&***");
    // A fragment is no option: it may be the end of a secret cut by a raw '#'.
    EXPECT_EQ(redact_url("redis://h?password=pw#frag"), "redis://h?password=***#***");
    EXPECT_EQ(redact_url("redis://h#"), "redis://h#");
}

TEST(redact_url, masks_passwords_holding_url_delimiters) {
    // Everything up to the LAST '@' is user information, whatever it holds.
    EXPECT_EQ(redact_url("redis://user:pa/ss@host"), "redis://***@host");
    EXPECT_EQ(redact_url("redis://u:a&b=c@host?client_name=x"), "redis://***@host?client_name=x");
    // A '?' or '#' before the last '@': either the password holds them, or the '@' is
    // part of an option value (or a fragment), whose rest follows it. Both are masked.
    EXPECT_EQ(redact_url("redis://:p?ss#w@host"), "redis://***");
    EXPECT_EQ(redact_url("rediss://u:%2F?#@host"), "rediss://***");
    EXPECT_EQ(redact_url("redis://h?client_name=a@b"), "redis://***");
    EXPECT_EQ(redact_url("kafka://h?kafka.sasl.password=Zq1@Yw2:1234/x&kafka.acks=1"),
              "kafka://***");
    EXPECT_EQ(redact_url("redis://u:p@ss@host"), "redis://***@host");
    EXPECT_EQ(redact_url("redis://u:12/ss@host:6379/0"), "redis://***@host:6379/0");
    EXPECT_EQ(redact_url("kafka://u:p/w@a:1,b:2"), "kafka://***@a:1,b:2");
}

TEST(redact_url, masks_secrets_of_malformed_urls) {
    EXPECT_EQ(redact_url("redis://u:secret@[bad"), "redis://***@[bad");
    EXPECT_EQ(redact_url("bogus"), "bogus");
    EXPECT_EQ(redact_url(""), "");
    EXPECT_EQ(redact_url("redis:u:secret@host"), "***@host");
    EXPECT_EQ(redact_url("user:secret@host"), "***@host");
    EXPECT_EQ(redact_url(" redis://u:secret@host"), "***@host");
    EXPECT_EQ(redact_url("://u:secret@host"), "***@host");
    EXPECT_EQ(redact_url("redis://u:se cret@ho st"), "redis://***@ho st");
    // Control characters are escaped: a redacted URL never splits a log line.
    EXPECT_EQ(redact_url("redis://ho\nst?client_name=a\rb"), "redis://ho%0Ast?client_name=a%0Db");
}

// A generated password with every delimiter a URL knows, in every place a password
// goes: none of its pieces may survive.
TEST(redact_url, never_shows_a_piece_of_a_hostile_password) {
    const std::vector<std::string> passwords = {
        "Zq1/Yw2?Xe3#Vr4",  "Zq1@Yw2:Xe3/Vr4",   "Zq1&Yw2=Xe3;Vr4", "Zq1#Yw2@Xe3?Vr4",
        "Zq1%2FYw2%3FXe3",  "Zq1 Yw2\nXe3\tVr4", "Zq1//Yw2??Xe3##", "Zq1:Yw2:Xe3:Vr4",
        "Zq1[Yw2]Xe3@@Vr4", "Zq1\\Yw2'Xe3\"Vr4"};
    const std::vector<std::string> templates = {
        "redis://user:{}@host:6379/0",
        "redis://:{}@host",
        "rediss://{}@host?tls_verify=false",
        "postgres://user:{}@127.0.0.1:5432/db?sslmode=disable",
        "postgresql://{}:{}@h/db",
        "kafka://u:{}@a:9092,b:9092?linger.ms=1",
        "kafka://a:9092?kafka.sasl.password={}",
        "kafka://a:9092?kafka.sasl.oauthbearer.client.secret={}&kafka.linger.ms=5",
        "kafka://a:9092?producer.ssl.key.pem={}",
        "kafka://a:9092?kafka.pass%77ord={}",
        "redis://h?password={}#x",
        "postgres://h/db?password={}&application_name=a",
        "redis://u:{}@[bad",
        "redis:u:{}@host",
        "{}@host",
        "nats://user:{}@host:4222",
    };
    for (const auto& password : passwords) {
        // Its pieces between delimiters, as a cut at any delimiter would leave them.
        std::vector<std::string> pieces;
        std::string piece;
        for (const char c : password + "/") {
            if (std::isalnum(static_cast<unsigned char>(c)) || c == '%') {
                piece += c;
            } else {
                if (piece.size() >= 3) {
                    pieces.push_back(piece);
                }
                piece.clear();
            }
        }
        for (auto url : templates) {
            for (auto at = url.find("{}"); at != std::string::npos; at = url.find("{}")) {
                url.replace(at, 2, password);
            }
            const auto redacted = redact_url(url);
            for (const auto& secret : pieces) {
                EXPECT_EQ(redacted.find(secret), std::string::npos)
                    << "'" << secret << "' of '" << url << "' shows in '" << redacted << "'";
            }
            EXPECT_EQ(redacted.find('\n'), std::string::npos) << redacted;
        }
    }
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
