// rediss-cluster:// against a cluster that speaks only TLS (to clients, on its cluster
// bus and for replication). Its certificate names a host name, not the IP addresses
// the cluster announces in CLUSTER SLOTS: the nodes are verified against
// tls_server_name.

#include "redis_cluster.hpp"
#include "test_support.hpp"
#include "tls_files.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/ssl/error.hpp>

#include <set>
#include <sstream>

namespace broadcaster::test {
namespace {

using asio::use_awaitable;

const redis_cluster_servers& cluster() {
    return redis_cluster_servers::tls();
}

std::string tls_url(const std::string& options) {
    return "rediss-cluster://" + cluster().seeds() + "?" + options;
}

// The shard channels starting with `prefix` the node on `port` has subscribers for.
std::set<std::string> shard_channels(unsigned short port, const std::string& prefix) {
    auto text = capture_output({"redis-cli", "--tls", "--cacert", cluster().tls_certificate(), "-p",
                                std::to_string(port), "pubsub", "shardchannels", prefix + "*"});
    std::erase(text, '\r');
    std::set<std::string> names;
    std::istringstream lines(text);
    for (std::string line; std::getline(lines, line);) {
        if (!line.empty()) {
            names.insert(line);
        }
    }
    return names;
}

// `async_connect` fails because the certificate is not accepted, and says so.
asio::awaitable<void> expect_refused(asio::io_context& io, const std::string& url) {
    broadcast bc(io, url);
    const auto [ec] = co_await bc.async_connect(asio::as_tuple(use_awaitable));
    EXPECT_EQ(ec.category(), asio::error::get_ssl_category()) << url << ": " << ec.message();
    EXPECT_NE(ec.message().find("certificate verify failed"), std::string::npos)
        << url << ": " << ec.message();
}

TEST(redis_cluster_tls, subscribes_and_publishes_on_every_shard_verifying_the_server_name) {
    const auto prefix = unique_name("tls");
    std::vector<std::string> names;
    for (int i = 0; i < 60; ++i) {
        names.push_back(prefix + "-" + std::to_string(i));
    }
    run_async_test([&](asio::io_context& io) -> asio::awaitable<void> {
        const auto url = tls_url("tls_ca_file=" + cluster().tls_certificate() +
                                 "&tls_server_name=" + cluster().tls_name());
        broadcast publisher(io, url);
        broadcast reader(io, url);
        co_await publisher.async_connect(use_awaitable);
        co_await reader.async_connect(use_awaitable);
        const channel_list channels(names);
        auto sub = co_await reader.async_subscribe(channels, use_awaitable);

        // Every master holds some of them: each shard was reached over TLS.
        std::set<std::string> everywhere;
        for (const auto port : cluster().ports()) {
            const auto held = shard_channels(port, prefix);
            EXPECT_FALSE(held.empty()) << "no channel on the node on " << port;
            everywhere.insert(held.begin(), held.end());
        }
        EXPECT_EQ(everywhere, std::set<std::string>(names.begin(), names.end()));

        for (const auto& name : names) {
            co_await publisher.async_publish(name, "on " + name, use_awaitable);
        }
        std::set<std::string> got;
        for (std::size_t i = 0; i < names.size(); ++i) {
            const auto ev = co_await receive(sub);
            EXPECT_EQ(ev.message(), "on " + std::string(ev.channel()));
            got.insert(std::string(ev.channel()));
        }
        EXPECT_EQ(got, std::set<std::string>(names.begin(), names.end()));
    });
}

TEST(redis_cluster_tls, refuses_a_certificate_of_another_ca_or_for_another_name) {
    tls_files other;  // self-signed: another CA
    run_async_test([&](asio::io_context& io) -> asio::awaitable<void> {
        // The right CA, but the seeds are IP addresses the certificate does not name.
        co_await expect_refused(io, tls_url("tls_ca_file=" + cluster().tls_certificate()));
        // The right name, but a CA that did not sign the nodes' certificate.
        co_await expect_refused(
            io, tls_url("tls_ca_file=" + other.cert + "&tls_server_name=" + cluster().tls_name()));
        // The system's CAs do not know the nodes' certificate either.
        co_await expect_refused(io, tls_url("tls_server_name=" + cluster().tls_name()));
    });
}

}  // namespace
}  // namespace broadcaster::test
