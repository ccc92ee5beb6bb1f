#pragma once

// broadcaster-kafka-mock (librdkafka's mock cluster) as a child of the test process:
// reads the bootstrap list from its first line of output, and drives it (brokers down
// and up, topics) through its standard input.

#include "server_process.hpp"

#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>

namespace broadcaster::test {

class kafka_mock {
  public:
    explicit kafka_mock(int brokers = 3) {
        int to_child[2];
        int from_child[2];
        if (pipe2(to_child, O_CLOEXEC) != 0 || pipe2(from_child, O_CLOEXEC) != 0) {
            throw std::runtime_error("pipe2 failed");
        }
        const std::string count = std::to_string(brokers);
        pid_ = fork();
        if (pid_ == 0) {
            prctl(PR_SET_PDEATHSIG, SIGKILL);  // dies with the test, even if it crashes
            dup2(to_child[0], STDIN_FILENO);
            dup2(from_child[1], STDOUT_FILENO);
            close_inherited_fds();
            execl(BROADCASTER_KAFKA_MOCK_BINARY, BROADCASTER_KAFKA_MOCK_BINARY, "--brokers",
                  count.c_str(), static_cast<char*>(nullptr));
            _exit(127);
        }
        ::close(to_child[0]);
        ::close(from_child[1]);
        if (pid_ < 0) {
            throw std::runtime_error("cannot start broadcaster-kafka-mock");
        }
        commands_ = fdopen(to_child[1], "w");
        replies_ = fdopen(from_child[0], "r");
        bootstrap_ = read_line();
        if (bootstrap_.empty()) {
            throw std::runtime_error("broadcaster-kafka-mock did not start");
        }
    }
    kafka_mock(const kafka_mock&) = delete;
    kafka_mock& operator=(const kafka_mock&) = delete;
    ~kafka_mock() {
        ::kill(pid_, SIGTERM);
        int status = 0;
        waitpid(pid_, &status, 0);
        std::fclose(commands_);
        std::fclose(replies_);
    }

    // "127.0.0.1:port,127.0.0.1:port,..."
    const std::string& bootstrap() const { return bootstrap_; }
    std::string url() const { return "kafka://" + bootstrap_; }

    // Broker `id` (1..N, or -1 for all) drops its connections and refuses new ones.
    void broker_down(int id = -1) { command(id < 0 ? "down all" : "down " + std::to_string(id)); }
    void broker_up(int id = -1) { command(id < 0 ? "up all" : "up " + std::to_string(id)); }
    void create_topic(const std::string& name, int partitions) {
        command("topic " + name + " " + std::to_string(partitions));
    }

  private:
    void command(const std::string& line) {
        std::fputs((line + "\n").c_str(), commands_);
        std::fflush(commands_);
        const auto reply = read_line();
        if (reply != "ok") {
            throw std::runtime_error("broadcaster-kafka-mock: '" + line + "': " + reply);
        }
    }

    std::string read_line() {
        std::string line;
        for (int c; (c = std::fgetc(replies_)) != EOF && c != '\n';) {
            line.push_back(static_cast<char>(c));
        }
        return line;
    }

    pid_t pid_ = -1;
    FILE* commands_ = nullptr;
    FILE* replies_ = nullptr;
    std::string bootstrap_;
};

}  // namespace broadcaster::test
