// redis-cluster:// on a steady 3-master/3-replica cluster: discovery from any seed,
// routing by hash slot (hash tags included) to each shard's master, one connection
// per shard and role.

#include "backends/redis_cluster/hash_slot.hpp"
#include "cluster_control.hpp"
#include "test_support.hpp"

#include <map>
#include <set>

namespace broadcaster::test {
namespace {

using asio::use_awaitable;

// The shard channels a master has subscribers for, among those starting with `prefix`.
std::set<std::string> shard_channels(unsigned short port, const std::string& prefix) {
    std::set<std::string> names;
    std::istringstream lines(redis_cli(port, {"pubsub", "shardchannels", prefix + "*"}));
    for (std::string line; std::getline(lines, line);) {
        if (!line.empty()) {
            names.insert(line);
        }
    }
    return names;
}

// Connections named `name` on the node on `port`.
int clients_named(unsigned short port, const std::string& name) {
    std::istringstream lines(redis_cli(port, {"client", "list"}));
    int count = 0;
    for (std::string line; std::getline(lines, line);) {
        count += line.find(" name=" + name + " ") != std::string::npos;
    }
    return count;
}

std::string url_with_seed(unsigned short port, const std::string& options) {
    return "redis-cluster://127.0.0.1:" + std::to_string(port) + "?" + options;
}

TEST(redis_cluster, channels_spread_over_every_shard_and_instances_on_different_seeds) {
    const auto& cluster = redis_cluster_servers::shared();
    const auto prefix = unique_name("spread");
    const auto by_master = channels_on_every_master(cluster, prefix, 4);
    std::vector<std::string> all;
    for (const auto& [port, names] : by_master) {
        all.insert(all.end(), names.begin(), names.end());
    }
    const auto tag = unique_name("i");  // client names of this test's connections
    run_async_test([&](asio::io_context& io) -> asio::awaitable<void> {
        // Each instance knows one seed, a different one: a master, a replica, a master.
        const auto& ports = cluster.ports();
        broadcast publisher(io, url_with_seed(ports[0], "client_name=" + tag + "p"));
        broadcast first(io, url_with_seed(ports[4], "client_name=" + tag + "a"));
        broadcast second(io, url_with_seed(ports[2], "client_name=" + tag + "b"));
        co_await publisher.async_connect(use_awaitable);
        co_await first.async_connect(use_awaitable);
        co_await second.async_connect(use_awaitable);
        const channel_list channels(all);
        auto sub_first = co_await first.async_subscribe(channels, use_awaitable);
        auto sub_second = co_await second.async_subscribe(channels, use_awaitable);

        // Each channel is subscribed on the master of its slot, and only there.
        for (const auto& [port, names] : by_master) {
            EXPECT_EQ(shard_channels(port, prefix),
                      std::set<std::string>(names.begin(), names.end()))
                << "master " << port;
        }
        for (const auto& channel : all) {
            co_await publisher.async_publish(channel, "on " + channel, use_awaitable);
        }
        for (auto* sub : {&sub_first, &sub_second}) {
            std::set<std::string> got;
            for (std::size_t i = 0; i < all.size(); ++i) {
                const auto ev = co_await receive(*sub);
                EXPECT_EQ(ev.message(), "on " + std::string(ev.channel()));
                got.insert(std::string(ev.channel()));
            }
            EXPECT_EQ(got, std::set<std::string>(all.begin(), all.end()));
        }
        // One subscribe and one publish connection per shard and instance.
        for (const auto& [port, names] : by_master) {
            EXPECT_EQ(clients_named(port, tag + "p-pub"), 1) << "master " << port;
            EXPECT_EQ(clients_named(port, tag + "a-sub"), 1) << "master " << port;
            EXPECT_EQ(clients_named(port, tag + "b-sub"), 1) << "master " << port;
            EXPECT_EQ(clients_named(port, tag + "a-pub"), 0) << "master " << port;
        }
    });
}

TEST(redis_cluster, channels_with_one_hash_tag_share_a_shard) {
    const auto& cluster = redis_cluster_servers::shared();
    const auto room = unique_name("room");
    const std::vector<std::string> names{"{" + room + "}.a", "{" + room + "}.b",
                                         "x.{" + room + "}.c"};
    const auto owner = slot_owner(cluster.ports().front(), detail::hash_slot(room));
    ASSERT_TRUE(owner);
    run_async_test([&](asio::io_context& io) -> asio::awaitable<void> {
        broadcast bc(io, redis_cluster_test_url());
        co_await bc.async_connect(use_awaitable);
        const channel_list channels(names);
        auto sub = co_await bc.async_subscribe(channels, use_awaitable);
        EXPECT_EQ(shard_channels(*owner, "{" + room), std::set<std::string>({names[0], names[1]}));
        EXPECT_EQ(shard_channels(*owner, "x.{" + room), std::set<std::string>({names[2]}));
        // One publisher's order holds across channels of one tag: they share a shard.
        for (int i = 0; i < 30; ++i) {
            bc.async_publish(names[static_cast<std::size_t>(i) % 3], std::to_string(i),
                             [](boost::system::error_code) {});
        }
        for (int i = 0; i < 30; ++i) {
            const auto ev = co_await receive(sub);
            EXPECT_EQ(ev.message(), std::to_string(i));
            EXPECT_EQ(ev.channel(), names[static_cast<std::size_t>(i) % 3]);
        }
    });
}

TEST(redis_cluster, a_thousand_channels_over_every_shard_subscribe_and_unsubscribe) {
    run_async_test([&](asio::io_context& io) -> asio::awaitable<void> {
        broadcast bc(io, redis_cluster_test_url());
        co_await bc.async_connect(use_awaitable);
        const auto prefix = unique_name("many");
        std::vector<std::string> names;
        for (int i = 0; i < 1000; ++i) {
            names.push_back(prefix + "-" + std::to_string(i));
        }
        const channel_list channels(names);
        {
            auto sub = co_await bc.async_subscribe(channels, use_awaitable);
            for (const auto& name : names) {
                bc.async_publish(name, name, [](boost::system::error_code) {});
            }
            std::set<std::string> got;
            for (std::size_t i = 0; i < names.size(); ++i) {
                got.insert(std::string((co_await receive(sub)).message()));
            }
            EXPECT_EQ(got.size(), names.size());
        }
        co_await eventually([&] { return bc.stats().active_channels == 0; });
        // Every shard let go of them.
        for (const auto port : master_ports(redis_cluster_servers::shared())) {
            bool released = false;
            for (int i = 0; i < 250 && !released; ++i) {
                released = shard_channels(port, prefix).empty();
                if (!released) {
                    asio::steady_timer t(io, 20ms);
                    co_await t.async_wait(use_awaitable);
                }
            }
            EXPECT_TRUE(released) << "master " << port;
        }
    });
}

}  // namespace
}  // namespace broadcaster::test
