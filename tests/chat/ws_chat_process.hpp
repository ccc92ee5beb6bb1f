#pragma once

// broadcaster-chat as a child process for the conformance and hardening tests: optional
// file-descriptor limit set in the child before exec, log captured in a file, the
// process's CPU time and RSS read from /proc, and a plain HTTP GET on a bare socket
// (which works when the server is out of descriptors, up to a deadline).

#include "server_process.hpp"
#include "ws_raw_client.hpp"

#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdlib>
#include <fstream>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace broadcaster::test::ws {

struct chat_options {
    std::vector<std::string> args = {};  // after --port and --broadcast
    std::string url = "memory://";
    std::optional<rlim_t> max_open_files = std::nullopt;  // RLIMIT_NOFILE in the child
    bool wait_listening = true;
};

class chat_process {
  public:
    explicit chat_process(chat_options options = {})
        : dir_("broadcaster-ws"), port_(free_port()), log_(dir_.path() / "chat.log") {
        // BROADCASTER_CHAT_BINARY in the environment runs the suite against another build.
        const char* binary = std::getenv("BROADCASTER_CHAT_BINARY");
        std::vector<std::string> argv{binary && *binary ? binary : BROADCASTER_CHAT_BINARY,
                                      "--port", std::to_string(port_), "--broadcast", options.url};
        argv.insert(argv.end(), options.args.begin(), options.args.end());
        std::vector<char*> args;
        for (auto& a : argv) {
            args.push_back(a.data());
        }
        args.push_back(nullptr);
        const int log = ::open(log_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        pid_ = ::fork();
        if (pid_ == 0) {
            prctl(PR_SET_PDEATHSIG, SIGKILL);
            if (options.max_open_files) {
                const rlimit limit{*options.max_open_files, *options.max_open_files};
                if (::setrlimit(RLIMIT_NOFILE, &limit) != 0) {
                    _exit(125);
                }
            }
            dup2(log, STDOUT_FILENO);
            dup2(log, STDERR_FILENO);
            close_inherited_fds();
            execv(args[0], args.data());
            _exit(127);
        }
        ::close(log);
        if (pid_ < 0) {
            throw std::runtime_error("cannot fork");
        }
        if (options.wait_listening) {
            wait_listening();
        }
    }
    chat_process(const chat_process&) = delete;
    chat_process& operator=(const chat_process&) = delete;
    ~chat_process() {
        if (pid_ > 0) {
            ::kill(pid_, SIGKILL);
            int status = 0;
            ::waitpid(pid_, &status, 0);
        }
    }

    unsigned short port() const { return port_; }
    pid_t pid() const { return pid_; }

    void wait_listening() {
        const auto until = clock::now() + 10s;
        while (!accepts_connections(port_)) {
            if (!alive()) {
                throw std::runtime_error("broadcaster-chat exited at start:\n" + log());
            }
            if (clock::now() > until) {
                throw std::runtime_error("broadcaster-chat did not start:\n" + log());
            }
            std::this_thread::sleep_for(5ms);
        }
    }

    // Whether the process still runs (a crash ends it).
    bool alive() {
        if (pid_ <= 0) {
            return false;
        }
        int status = 0;
        if (::waitpid(pid_, &status, WNOHANG) == pid_) {
            pid_ = -1;
            exit_status_ = status;
            return false;
        }
        return true;
    }

    // Sends `signal` and waits (bounded) for the exit; returns the wait status, or
    // nullopt if it did not exit in time.
    std::optional<int> stop(int signal, std::chrono::milliseconds timeout = 10000ms) {
        if (pid_ > 0) {
            ::kill(pid_, signal);
        }
        return wait_exit(timeout);
    }

    std::optional<int> wait_exit(std::chrono::milliseconds timeout) {
        const auto until = clock::now() + timeout;
        while (alive()) {
            if (clock::now() > until) {
                return std::nullopt;
            }
            std::this_thread::sleep_for(5ms);
        }
        return exit_status_;
    }

    std::string log() const {
        std::ifstream in(log_);
        std::stringstream text;
        text << in.rdbuf();
        return text.str();
    }

    // User plus system CPU time so far, in clock ticks (/proc/PID/stat).
    long cpu_ticks() const {
        std::ifstream in("/proc/" + std::to_string(pid_) + "/stat");
        std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        // Fields after the command name (which may hold spaces) start after ") ".
        std::istringstream fields(text.substr(text.rfind(')') + 2));
        std::string field;
        long utime = 0, stime = 0;
        for (int i = 3; i <= 15 && fields >> field; ++i) {
            if (i == 14) {
                utime = std::stol(field);
            } else if (i == 15) {
                stime = std::stol(field);
            }
        }
        return utime + stime;
    }

    // Resident set size in KiB (/proc/PID/status VmRSS).
    long rss_kib() const {
        std::ifstream in("/proc/" + std::to_string(pid_) + "/status");
        std::string line;
        while (std::getline(in, line)) {
            if (line.rfind("VmRSS:", 0) == 0) {
                return std::stol(line.substr(6));
            }
        }
        return -1;
    }

    // Open descriptors of the process.
    std::size_t open_files() const {
        std::size_t n = 0;
        for ([[maybe_unused]] const auto& entry :
             std::filesystem::directory_iterator("/proc/" + std::to_string(pid_) + "/fd")) {
            ++n;
        }
        return n;
    }

  private:
    scratch_dir dir_;
    unsigned short port_;
    std::filesystem::path log_;
    pid_t pid_ = -1;
    int exit_status_ = 0;
};

// A GET with Host 127.0.0.1 on a bare socket: status and body, or nullopt if no
// answer came within `timeout`.
inline std::optional<std::pair<int, std::string>> http_get(
    unsigned short port, const std::string& target, std::chrono::milliseconds timeout = 5000ms) {
    raw_client c(port);
    c.send("GET " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    const auto head = c.read_http(timeout);
    if (!head) {
        return std::nullopt;
    }
    c.read_to_end(timeout);
    // read_to_end keeps the rest of the buffer; take it through a second parse-free read.
    return std::pair<int, std::string>{head->status, c.take_rest()};
}

// A metric's value from /metrics; throws if it is missing.
inline std::uint64_t metric(unsigned short port, const std::string& name) {
    const auto answer = http_get(port, "/metrics");
    if (!answer) {
        throw std::runtime_error("no answer from /metrics");
    }
    const auto at = answer->second.find("\n" + name + " ");
    if (at == std::string::npos) {
        throw std::runtime_error("no metric " + name);
    }
    return std::stoull(answer->second.substr(at + name.size() + 2));
}

// How often `needle` occurs in `text`.
inline std::size_t count_of(const std::string& text, const std::string& needle) {
    std::size_t n = 0;
    for (auto at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) {
        ++n;
    }
    return n;
}

}  // namespace broadcaster::test::ws
