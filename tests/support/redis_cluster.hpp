#pragma once

// The Redis Clusters the cluster tests share (3 masters, 3 replicas on loopback, formed
// by tests/redis_cluster/cluster_fixture.sh; the TLS one has 3 masters only): CTest
// fixtures form them once for every test that needs one, in directories of the build
// tree; run outside CTest, the first test of the process forms one of its own.

#include "server_process.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace broadcaster::test {

// Runs `argv` and returns what it wrote on stdout (stderr is discarded).
inline std::string capture_output(std::vector<std::string> argv) {
    std::vector<char*> args;
    for (auto& a : argv) {
        args.push_back(a.data());
    }
    args.push_back(nullptr);
    int out[2];
    if (pipe2(out, O_CLOEXEC) != 0) {
        throw std::runtime_error("pipe2 failed");
    }
    const pid_t pid = fork();
    if (pid == 0) {
        dup2(out[1], STDOUT_FILENO);
        const int null = ::open("/dev/null", O_WRONLY);
        dup2(null, STDERR_FILENO);
        close_inherited_fds();
        execvp(args[0], args.data());
        _exit(127);
    }
    ::close(out[1]);
    std::string text;
    char buffer[4096];
    for (ssize_t n; (n = ::read(out[0], buffer, sizeof buffer)) > 0;) {
        text.append(buffer, static_cast<std::size_t>(n));
    }
    ::close(out[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    return text;
}

// `redis-cli -p port args...`, its output without '\r'.
inline std::string redis_cli(unsigned short port, std::vector<std::string> args) {
    std::vector<std::string> argv{"redis-cli", "-p", std::to_string(port)};
    argv.insert(argv.end(), args.begin(), args.end());
    auto text = capture_output(argv);
    std::erase(text, '\r');
    return text;
}

class redis_cluster_servers {
  public:
    // The running cluster: the fixture's, or one formed for this process.
    static const redis_cluster_servers& shared() {
        static redis_cluster_servers cluster(BROADCASTER_REDIS_CLUSTER_DIR);
        return cluster;
    }
    // A second cluster for the tests that kill nodes and move slots, so that they
    // never disturb the others (CTest runs them one at a time).
    static const redis_cluster_servers& chaos() {
        static redis_cluster_servers cluster(BROADCASTER_REDIS_CLUSTER_CHAOS_DIR);
        return cluster;
    }
#ifdef BROADCASTER_REDIS_CLUSTER_TLS_DIR
    // A cluster that speaks only TLS, for the rediss-cluster:// tests.
    static const redis_cluster_servers& tls() {
        static redis_cluster_servers cluster(BROADCASTER_REDIS_CLUSTER_TLS_DIR, true);
        return cluster;
    }
#endif

    const std::filesystem::path& dir() const {
        return dir_;
    }
    // "127.0.0.1:p1,127.0.0.1:p2,127.0.0.1:p3" (three of the six nodes).
    const std::string& seeds() const {
        return seeds_;
    }
    // Every node's port, masters and replicas (roles change with failovers).
    const std::vector<unsigned short>& ports() const {
        return ports_;
    }
    // TLS cluster: the nodes' certificate (also their CA) and the only name it is for.
    std::string tls_certificate() const {
        return (dir_ / "tls" / "cert.pem").string();
    }
    std::string tls_name() const {
        std::ifstream in(dir_ / "tls" / "name");
        std::string name;
        in >> name;
        return name;
    }
    // The fixture's supervisor: SIGUSR1 starts the nodes a test killed again.
    pid_t supervisor() const {
        std::ifstream in(dir_ / "supervisor.pid");
        pid_t pid = -1;
        in >> pid;
        return pid;
    }

    redis_cluster_servers(const redis_cluster_servers&) = delete;
    redis_cluster_servers& operator=(const redis_cluster_servers&) = delete;
    ~redis_cluster_servers() {
        if (own_) {
            run_command({BROADCASTER_REDIS_CLUSTER_FIXTURE, "stop", dir_.string()}, "/dev/null");
        }
    }

  private:
    // The fixture's cluster in `fixture_dir` if it runs, else one formed here.
    explicit redis_cluster_servers(const std::filesystem::path& fixture_dir, bool tls = false) {
        dir_ = fixture_dir;
        if (!std::filesystem::exists(dir_ / "url") || ::kill(supervisor(), 0) != 0) {
            own_ = true;
            dir_ = std::filesystem::temp_directory_path() /
                   ("broadcaster-cluster-" + std::string(tls ? "tls-" : "") +
                    std::to_string(getpid()));
            std::vector<std::string> command{BROADCASTER_REDIS_CLUSTER_FIXTURE, "start",
                                             dir_.string()};
            if (tls) {
                command.push_back("tls");
            }
            if (run_command(command, "/dev/null") != 0) {
                throw std::runtime_error("cannot form the Redis Cluster for the tests");
            }
        }
        std::ifstream url(dir_ / "url");
        std::ifstream ports(dir_ / "ports");
        if (!(url >> seeds_)) {
            throw std::runtime_error("no Redis Cluster in " + dir_.string());
        }
        for (unsigned short port; ports >> port;) {
            ports_.push_back(port);
        }
    }

    bool own_ = false;
    std::filesystem::path dir_;
    std::string seeds_;
    std::vector<unsigned short> ports_;
};

// The URL of the shared cluster, with extra query options if given.
inline std::string redis_cluster_test_url(const std::string& options = "") {
    return "redis-cluster://" + redis_cluster_servers::shared().seeds() +
           (options.empty() ? "" : "?" + options);
}

}  // namespace broadcaster::test
