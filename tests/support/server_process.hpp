#pragma once

// Starts a real broker (redis-server, ...) as a child process of the test, in the
// foreground, on a free loopback port; waits until it accepts connections; stops it by
// PID and reaps it. Can kill -9 and restart it on the same port for restart tests.

#include <fcntl.h>
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include <pwd.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <random>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace broadcaster::test {

// A loopback port nobody listens on right now, not handed out before by this process,
// and below the kernel's ephemeral range (32768 and up): there, any outgoing connection
// (the tests make thousands) may take it between now and the server's bind. Clear of
// the Redis Cluster fixture's ports too (20000-21999, and their buses 10000 above).
inline unsigned short free_port() {
    static std::mutex mutex;
    static std::set<unsigned short> handed_out;
    static std::mt19937 random(std::random_device{}());
    std::lock_guard lock(mutex);
    for (;;) {
        const auto port =
            static_cast<unsigned short>(std::uniform_int_distribution<int>(22000, 29999)(random));
        boost::asio::io_context io;
        boost::asio::ip::tcp::acceptor acceptor(io);
        boost::system::error_code ec;
        acceptor.open(boost::asio::ip::tcp::v4(), ec);
        acceptor.bind({boost::asio::ip::address_v4::loopback(), port}, ec);
        if (!ec && handed_out.insert(port).second) {
            return port;
        }
    }
}

// In a forked child before exec: closes every descriptor but stdin, stdout and stderr.
// The test's own sockets (Asio opens them without close-on-exec) would otherwise live on
// in the server, and one of them listening could pass for the server's.
inline void close_inherited_fds() {
    ::close_range(3, ~0U, 0);
}

// The socket inodes ("socket:[N]") process `pid` holds open.
inline std::set<std::string> sockets_of(pid_t pid) {
    std::set<std::string> sockets;
    std::error_code ec;
    const std::filesystem::path fds = "/proc/" + std::to_string(pid) + "/fd";
    for (const auto& fd : std::filesystem::directory_iterator(fds, ec)) {
        sockets.insert(std::filesystem::read_symlink(fd.path(), ec).string());
    }
    return sockets;
}

// Whether process `pid` holds a socket listening on TCP `port` that the test process
// does not hold itself: something else may listen there (a port taken meanwhile by
// another test's server), and accepting connections alone would pass it for ours.
inline bool listens_on(pid_t pid, unsigned short port) {
    std::set<std::string> inodes;
    for (const char* table : {"/proc/net/tcp", "/proc/net/tcp6"}) {
        std::ifstream in(table);
        std::string line;
        std::getline(in, line);  // the header
        while (std::getline(in, line)) {
            std::istringstream fields(line);
            std::string slot, local, remote, state, queues, timer, retransmits, uid, timeout;
            std::string inode;
            fields >> slot >> local >> remote >> state >> queues >> timer >> retransmits >> uid >>
                timeout >> inode;
            const auto colon = local.rfind(':');
            if (state == "0A" && colon != std::string::npos &&
                std::stoul(local.substr(colon + 1), nullptr, 16) == port) {
                inodes.insert("socket:[" + inode + "]");
            }
        }
    }
    const auto ours = sockets_of(getpid());
    for (const auto& socket : sockets_of(pid)) {
        if (inodes.contains(socket) && !ours.contains(socket)) {
            return true;
        }
    }
    return false;
}

// Whether something accepts TCP connections on 127.0.0.1:`port`.
inline bool accepts_connections(unsigned short port) {
    boost::asio::io_context io;
    boost::asio::ip::tcp::socket socket(io);
    boost::system::error_code ec;
    socket.connect({boost::asio::ip::address_v4::loopback(), port}, ec);
    return !ec;
}

class server_process {
  public:
    // `argv` is the command line (argv[0] looked up on PATH); output goes to `log`.
    // `user`: when running as root, the account to run the server as (PostgreSQL
    // refuses to run as root); ignored otherwise.
    server_process(std::vector<std::string> argv, unsigned short port, std::filesystem::path log,
                   std::string user = "")
        : argv_(std::move(argv)), port_(port), log_(std::move(log)), user_(std::move(user)) {
        start();
    }
    server_process(const server_process&) = delete;
    server_process& operator=(const server_process&) = delete;
    ~server_process() { stop(SIGTERM); }

    unsigned short port() const { return port_; }
    pid_t pid() const { return pid_; }

    void start() {
        std::vector<char*> args;
        for (auto& a : argv_) {
            args.push_back(a.data());
        }
        args.push_back(nullptr);
        const int log = ::open(log_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        pid_ = fork();
        if (pid_ == 0) {
            become(user_);
            // The server dies with the test process, even if the test crashes. (Set after
            // changing user: a credential change clears it.)
            prctl(PR_SET_PDEATHSIG, SIGKILL);
            dup2(log, STDOUT_FILENO);
            dup2(log, STDERR_FILENO);
            close_inherited_fds();
            execvp(args[0], args.data());
            _exit(127);
        }
        ::close(log);
        if (pid_ < 0) {
            throw std::runtime_error("cannot start " + argv_[0]);
        }
        // Bounded wait until it accepts connections, on a socket of its own.
        const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
        while (!accepts_connections(port_) || !listens_on(pid_, port_)) {
            int status = 0;
            if (waitpid(pid_, &status, WNOHANG) == pid_) {
                pid_ = -1;
                throw std::runtime_error(argv_[0] + " exited at start; see " + log_.string());
            }
            if (std::chrono::steady_clock::now() > until) {
                stop(SIGKILL);
                throw std::runtime_error(argv_[0] + " did not start; see " + log_.string());
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
        }
    }

    // Sends `signal` and reaps the process.
    void stop(int signal = SIGTERM) {
        if (pid_ <= 0) {
            return;
        }
        ::kill(pid_, signal);
        int status = 0;
        waitpid(pid_, &status, 0);
        pid_ = -1;
    }

    // The test reaped the process itself.
    void forget() { pid_ = -1; }

    // kill -9, then start again on the same port.
    void crash_and_restart() {
        stop(SIGKILL);
        start();
    }

    // In a forked child: switches to `user` when running as root.
    static void become(const std::string& user) {
        if (user.empty() || geteuid() != 0) {
            return;
        }
        if (const passwd* account = getpwnam(user.c_str())) {
            if (setgid(account->pw_gid) != 0 || setuid(account->pw_uid) != 0) {
                _exit(126);
            }
        }
    }

  private:
    std::vector<std::string> argv_;
    unsigned short port_;
    std::filesystem::path log_;
    std::string user_;
    pid_t pid_ = -1;
};

// Runs a command to completion (as `user` when root); returns its exit status.
inline int run_command(std::vector<std::string> argv, const std::filesystem::path& log,
                       const std::string& user = "") {
    std::vector<char*> args;
    for (auto& a : argv) {
        args.push_back(a.data());
    }
    args.push_back(nullptr);
    const int out = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    const pid_t pid = fork();
    if (pid == 0) {
        server_process::become(user);
        dup2(out, STDOUT_FILENO);
        dup2(out, STDERR_FILENO);
        close_inherited_fds();
        execvp(args[0], args.data());
        _exit(127);
    }
    ::close(out);
    int status = 0;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// A scratch directory under the system temp dir, removed at destruction.
class scratch_dir {
  public:
    explicit scratch_dir(const std::string& prefix) {
        std::string pattern = (std::filesystem::temp_directory_path() / (prefix + "-XXXXXX"));
        if (!mkdtemp(pattern.data())) {
            throw std::runtime_error("mkdtemp failed");
        }
        path_ = pattern;
    }
    ~scratch_dir() {
        std::error_code ec;
        std::filesystem::remove_all(path_, ec);
    }
    const std::filesystem::path& path() const { return path_; }

  private:
    std::filesystem::path path_;
};

}  // namespace broadcaster::test
