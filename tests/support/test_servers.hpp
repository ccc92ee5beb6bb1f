#pragma once

// The brokers the tests talk to: real servers, started on first use as children of
// the test process on free loopback ports, and stopped when it exits. An environment
// variable points the tests at an already running server instead.

#include "server_process.hpp"

#ifdef BROADCASTER_WITH_KAFKA
#include "kafka_mock.hpp"
#endif

#include <cstdlib>
#include <memory>
#include <string>

namespace broadcaster::test {

// A redis-server of its own: `extra` adds command-line options (e.g. a password).
inline std::unique_ptr<server_process> start_redis(const scratch_dir& dir, unsigned short port,
                                                   std::vector<std::string> extra = {}) {
    std::vector<std::string> argv{
        "redis-server",     "--port", std::to_string(port), "--bind", "127.0.0.1",
        "--save",           "",       "--appendonly",       "no",     "--dir",
        dir.path().string()};
    argv.insert(argv.end(), extra.begin(), extra.end());
    return std::make_unique<server_process>(argv, port, dir.path() / "redis.log");
}

// The URL of the Redis server shared by the tests of this process
// ($BROADCASTER_TEST_REDIS_URL, or one started here).
inline std::string redis_test_url() {
    if (const char* url = std::getenv("BROADCASTER_TEST_REDIS_URL")) {
        return url;
    }
    static scratch_dir dir("broadcaster-redis");
    static auto server = start_redis(dir, free_port());
    return "redis://127.0.0.1:" + std::to_string(server->port());
}

// A throwaway PostgreSQL 15 cluster: initdb into `dir`, then the postmaster in the
// foreground on `port` (as the postgres user when the tests run as root).
class postgres_server {
  public:
    explicit postgres_server(unsigned short port = free_port()) : port_(port) {
        const std::string bin = "/usr/lib/postgresql/15/bin/";
        const auto data = (dir_.path() / "data").string();
        if (geteuid() == 0) {
            // The cluster's files must belong to the account that runs it.
            std::filesystem::permissions(dir_.path(), std::filesystem::perms::all);
            const passwd* account = getpwnam(user);
            if (!account || chown(dir_.path().c_str(), account->pw_uid, account->pw_gid) != 0) {
                throw std::runtime_error("cannot hand the cluster directory to postgres");
            }
        }
        const auto log = dir_.path() / "postgres.log";
        if (run_command({bin + "initdb", "-D", data, "-U", "postgres", "-A", "trust", "-E", "UTF8",
                         "--locale=C.UTF-8", "--no-sync"},
                        log, geteuid() == 0 ? user : "") != 0) {
            throw std::runtime_error("initdb failed; see " + log.string());
        }
        server_ = std::make_unique<server_process>(
            std::vector<std::string>{bin + "postgres", "-D", data, "-p", std::to_string(port_),
                                     "-c", "listen_addresses=127.0.0.1", "-k", dir_.path().string(),
                                     "-c", "fsync=off"},
            port_, log, geteuid() == 0 ? user : "");
        wait_until_ready();
    }

    unsigned short port() const { return port_; }
    std::string url() const {
        return "postgres://postgres@127.0.0.1:" + std::to_string(port_) + "/postgres";
    }
    // Immediate shutdown (as `pg_ctl stop -m immediate`), then start again: crash recovery.
    void crash_and_restart() {
        server_->stop(SIGQUIT);
        server_->start();
        wait_until_ready();
    }
    // Immediate shutdown; `start` brings it back on the same port.
    void stop() { server_->stop(SIGQUIT); }
    void start() {
        server_->start();
        wait_until_ready();
    }
    // Runs SQL with psql; returns its exit status.
    int sql(const std::string& statement) const {
        return run_command({"psql", "-h", "127.0.0.1", "-p", std::to_string(port_), "-U",
                            "postgres", "-d", "postgres", "-v", "ON_ERROR_STOP=1", "-c", statement},
                           dir_.path() / "psql.log");
    }

  private:
    // Listening is not ready: the server refuses sessions while it starts up.
    void wait_until_ready() const {
        const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(20);
        while (sql("SELECT 1") != 0) {
            if (std::chrono::steady_clock::now() > until) {
                throw std::runtime_error("PostgreSQL did not become ready");
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
    }

    static constexpr const char* user = "postgres";
    scratch_dir dir_{"broadcaster-pg"};
    unsigned short port_;
    std::unique_ptr<server_process> server_;
};

// The URL of the PostgreSQL server shared by the tests of this process
// ($BROADCASTER_TEST_POSTGRES_URL, or a cluster made here).
inline std::string postgres_test_url() {
    if (const char* url = std::getenv("BROADCASTER_TEST_POSTGRES_URL")) {
        return url;
    }
    static postgres_server server;
    return server.url();
}

#ifdef BROADCASTER_WITH_NATS
// A nats-server of its own on `port`; `extra` adds command-line options (e.g. cluster
// routes or a token).
inline std::unique_ptr<server_process> start_nats(const scratch_dir& dir, unsigned short port,
                                                  std::vector<std::string> extra = {}) {
    std::vector<std::string> argv{"nats-server", "-a", "127.0.0.1", "-p", std::to_string(port)};
    argv.insert(argv.end(), extra.begin(), extra.end());
    return std::make_unique<server_process>(argv, port, dir.path() / "nats.log");
}

// The URL of the NATS server shared by the tests of this process
// ($BROADCASTER_TEST_NATS_URL, or one started here).
inline std::string nats_test_url() {
    if (const char* url = std::getenv("BROADCASTER_TEST_NATS_URL")) {
        return url;
    }
    static scratch_dir dir("broadcaster-nats");
    static auto server = start_nats(dir, free_port());
    return "nats://127.0.0.1:" + std::to_string(server->port());
}

// The URL of a JetStream-enabled NATS server shared by the tests of this process
// ($BROADCASTER_TEST_NATS_JETSTREAM_URL, or one started here with its store in a scratch
// directory), without options.
inline std::string nats_jetstream_test_url() {
    if (const char* url = std::getenv("BROADCASTER_TEST_NATS_JETSTREAM_URL")) {
        return url;
    }
    static scratch_dir dir("broadcaster-nats-js");
    static auto server = start_nats(dir, free_port(), {"-js", "-sd", (dir.path() / "js").string()});
    return "nats://127.0.0.1:" + std::to_string(server->port());
}
#endif

#ifdef BROADCASTER_WITH_KAFKA
// The URL of the Kafka cluster shared by the tests of this process
// ($BROADCASTER_TEST_KAFKA_URL, or a 3-broker mock cluster started here).
inline std::string kafka_test_url() {
    if (const char* url = std::getenv("BROADCASTER_TEST_KAFKA_URL")) {
        return url;
    }
    static kafka_mock cluster(3);
    return cluster.url();
}
#endif

}  // namespace broadcaster::test
