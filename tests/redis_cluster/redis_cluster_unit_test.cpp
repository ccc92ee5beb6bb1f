// Redis Cluster pieces that need no server: hash slots and the URL.

#include "backends/redis_cluster/cluster_config.hpp"
#include "backends/redis_cluster/hash_slot.hpp"

#include <broadcaster/broadcaster.hpp>

#include <gtest/gtest.h>

namespace broadcaster::test {
namespace {

using detail::hash_slot;

backend_config config_for(const std::string& url) {
    return backend_config{url, redact_url(url), broadcast_options{}};
}

TEST(redis_cluster_unit, crc16_matches_the_cluster_specification) {
    // The specification's reference value for "123456789".
    EXPECT_EQ(detail::crc16_xmodem("123456789"), 0x31C3);
    EXPECT_EQ(hash_slot("foo"), 12182);
    EXPECT_EQ(hash_slot(""), 0);
}

TEST(redis_cluster_unit, a_hash_tag_decides_the_slot) {
    EXPECT_EQ(hash_slot("{user1000}.following"), hash_slot("{user1000}.followers"));
    EXPECT_EQ(hash_slot("{user1000}.following"), hash_slot("user1000"));
    // Only the first tag, and only a non-empty one, counts.
    EXPECT_EQ(hash_slot("foo{bar}{zap}"), hash_slot("bar"));
    EXPECT_EQ(hash_slot("foo{}{bar}"), hash_slot("foo{}{bar}"));
    EXPECT_NE(hash_slot("foo{}{bar}"), hash_slot("bar"));
    EXPECT_EQ(hash_slot("{}"), detail::crc16_xmodem("{}") % 16384);
    EXPECT_EQ(hash_slot("foo{bar"), detail::crc16_xmodem("foo{bar") % 16384);
}

TEST(redis_cluster_unit, reads_seed_nodes_and_redis_options) {
    const auto parsed = detail::parse_cluster_url(
        config_for("redis-cluster://user:secret@10.0.0.1:7000,10.0.0.2,[::1]:7002?client_name=app"
                   "&publish_timeout_ms=250"));
    EXPECT_EQ(parsed.seeds,
              (std::vector<std::string>{"10.0.0.1:7000", "10.0.0.2:6379", "[::1]:7002"}));
    EXPECT_EQ(parsed.node.user, "user");
    EXPECT_EQ(parsed.node.password, "secret");
    EXPECT_EQ(parsed.node.client_name, "app");
    EXPECT_EQ(parsed.node.publish_timeout, std::chrono::milliseconds(250));
    EXPECT_FALSE(parsed.node.tls);
    EXPECT_TRUE(detail::parse_cluster_url(config_for("rediss-cluster://h:1")).node.tls);
    const auto node = parsed.for_node("10.0.0.9", "7009");
    EXPECT_EQ(node.host, "10.0.0.9");
    EXPECT_EQ(node.password, "secret");
}

TEST(redis_cluster_unit, refuses_bad_urls_without_showing_the_password) {
    for (const std::string url :
         {"redis-cluster://u:hunter2@h:1,,h:2", "redis-cluster://u:hunter2@h:1/3",
          "redis-cluster://u:hunter2@h:1?nope=1", "redis-cluster://u:hunter2@h:0",
          "redis-cluster://u:hunter2@"}) {
        try {
            (void)detail::parse_cluster_url(config_for(url));
            ADD_FAILURE() << "accepted " << url;
        } catch (const boost::system::system_error& e) {
            EXPECT_EQ(e.code(), error::invalid_url) << url;
            EXPECT_EQ(std::string(e.what()).find("hunter2"), std::string::npos) << e.what();
        }
    }
}

TEST(redis_cluster_unit, the_scheme_is_registered) {
    boost::asio::io_context io;
    EXPECT_NO_THROW(broadcast(io, "redis-cluster://127.0.0.1:1"));
    EXPECT_NO_THROW(broadcast(io, "rediss-cluster://127.0.0.1:1?tls_verify=false"));
}

TEST(redis_cluster_unit, connect_fails_when_no_seed_answers) {
    boost::asio::io_context io;
    broadcast bc(io, "redis-cluster://127.0.0.1:1,127.0.0.1:2?connect_timeout_ms=2000");
    boost::system::error_code result;
    bool done = false;
    bc.async_connect([&](boost::system::error_code ec) {
        result = ec;
        done = true;
    });
    io.run_for(std::chrono::seconds(5));
    ASSERT_TRUE(done);
    EXPECT_TRUE(result);
}

}  // namespace
}  // namespace broadcaster::test
