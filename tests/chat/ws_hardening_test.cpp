// broadcaster-chat under resource pressure and at its edges: out of file descriptors,
// a signal while the backend is still connecting, out of memory at run time, and
// command-line values that make no sense. The real binary, as a child process.

#include "ws_chat_process.hpp"
#include "ws_raw_client.hpp"

#include <sys/resource.h>

#include <gtest/gtest.h>

#include <memory>

namespace broadcaster::test::ws {
namespace {

std::unique_ptr<raw_client> open_websocket(unsigned short port) {
    auto c = std::make_unique<raw_client>(port);
    const auto head = c->upgrade();
    if (!head || head->status != 101) {
        throw std::runtime_error("upgrade refused: " + (head ? head->text : "no answer"));
    }
    return c;
}

// Sends `text` and waits for it to come back.
bool round_trip(raw_client& c, const std::string& text) {
    c.send_frame(op_text, text);
    while (auto f = c.read_frame()) {
        if (f->opcode == op_text && f->payload == text) {
            return true;
        }
    }
    return false;
}

// Out of descriptors, accept fails at once while connections wait in the backlog: the
// server must pause instead of retrying in a loop, keep serving its clients, and accept
// again once descriptors are free.
TEST(chat_hardening, out_of_file_descriptors_the_server_pauses_and_recovers) {
    constexpr rlim_t limit = 64;
    chat_process chat({.args = {"--handshake-timeout", "60"}, .max_open_files = limit});
    auto member = open_websocket(chat.port());

    // Idle connections the server accepts until it runs out, then more in its backlog.
    std::vector<std::unique_ptr<raw_client>> hogs;
    for (rlim_t i = 0; i < limit + 40; ++i) {
        hogs.push_back(std::make_unique<raw_client>(chat.port()));
    }
    const auto until = clock::now() + 10s;
    while (chat.log().find("cannot accept connections") == std::string::npos &&
           clock::now() < until) {
        std::this_thread::sleep_for(10ms);
    }
    ASSERT_GE(chat.open_files(), limit - 1) << chat.log();

    // Spinning on accept burns a whole core; pausing costs next to nothing.
    const long ticks_per_second = ::sysconf(_SC_CLK_TCK);
    const auto before = chat.cpu_ticks();
    std::this_thread::sleep_for(1s);
    const auto used = chat.cpu_ticks() - before;
    EXPECT_LT(used, ticks_per_second / 10) << "CPU ticks in one second out of descriptors";

    EXPECT_TRUE(round_trip(*member, "still serving")) << "a connected client was not served";
    // Many failed accepts, one line: the episode is logged once.
    EXPECT_EQ(count_of(chat.log(), "cannot accept connections"), 1u) << chat.log();

    hogs.clear();  // the server sees them close and frees their descriptors
    const auto health = http_get(chat.port(), "/healthz", 5000ms);
    ASSERT_TRUE(health) << "no answer once descriptors were free";
    EXPECT_EQ(health->first, 200);
    EXPECT_GE(metric(chat.port(), "chat_accept_failures_total"), 1u);
    // Accepting the closed hogs still queued can run out briefly again, a new episode:
    // each one that began has ended, and said so once.
    const auto log = chat.log();
    EXPECT_GE(count_of(log, "accepting connections again"), 1u) << log;
    EXPECT_EQ(count_of(log, "accepting connections again"),
              count_of(log, "cannot accept connections"))
        << log;
    EXPECT_TRUE(round_trip(*member, "and after"));
}

// A listening socket in the test that accepts and never answers: a backend stuck in
// its handshake.
class silent_broker {
  public:
    silent_broker() : port_(free_port()) {
        fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        const int one = 1;
        ::setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        sockaddr_in address{};
        address.sin_family = AF_INET;
        address.sin_port = htons(port_);
        address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (::bind(fd_, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 ||
            ::listen(fd_, 16) != 0) {
            throw std::runtime_error("cannot listen");
        }
    }
    ~silent_broker() {
        for (const int fd : accepted_) {
            ::close(fd);
        }
        ::close(fd_);
    }
    unsigned short port() const { return port_; }

    // Accepts a connection and reads what the client sent first (within `timeout`).
    std::string accept_and_read(std::chrono::milliseconds timeout) {
        pollfd p{fd_, POLLIN, 0};
        if (::poll(&p, 1, static_cast<int>(timeout.count())) != 1) {
            return {};
        }
        const int fd = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
        accepted_.push_back(fd);
        pollfd q{fd, POLLIN, 0};
        char bytes[256];
        if (::poll(&q, 1, static_cast<int>(timeout.count())) != 1) {
            return {};
        }
        const auto n = ::recv(fd, bytes, sizeof bytes, 0);
        return n > 0 ? std::string(bytes, static_cast<std::size_t>(n)) : std::string();
    }

  private:
    unsigned short port_;
    int fd_ = -1;
    std::vector<int> accepted_;
};

TEST(chat_hardening, sigterm_while_the_backend_connects_exits_0) {
    silent_broker broker;
    chat_process chat(
        {.url = "redis://127.0.0.1:" + std::to_string(broker.port()) + "?connect_timeout_ms=60000",
         .wait_listening = false});
    // The server is in the middle of its Redis handshake.
    ASSERT_NE(broker.accept_and_read(10000ms).find("CLIENT"), std::string::npos) << chat.log();
    const auto status = chat.stop(SIGTERM, 10000ms);
    ASSERT_TRUE(status) << "did not exit on SIGTERM\n" << chat.log();
    EXPECT_TRUE(WIFEXITED(*status)) << chat.log();
    EXPECT_EQ(WEXITSTATUS(*status), 0) << chat.log();
    const auto log = chat.log();
    EXPECT_EQ(log.find("cannot start"), std::string::npos) << log;
    EXPECT_NE(log.find("stopped"), std::string::npos) << log;
}

long vm_size_kib(pid_t pid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/status");
    std::string line;
    while (std::getline(in, line)) {
        if (line.rfind("VmSize:", 0) == 0) {
            return std::stol(line.substr(7));
        }
    }
    return -1;
}

// Out of memory while running is not a failure to start, and the log says what happened.
// (The address space is limited after start, so only the big message can exhaust it.)
TEST(chat_hardening, running_out_of_memory_is_not_reported_as_a_start_failure) {
    chat_process chat(
        {.args = {"--max-message-bytes", "1073741824", "--client-queue-bytes", "1073741824"}});
    auto c = open_websocket(chat.port());
    const auto size = vm_size_kib(chat.pid());
    ASSERT_GT(size, 0);
    const rlim_t bytes = (static_cast<rlim_t>(size) + 64 * 1024) * 1024;
    const rlimit limit{bytes, bytes};
    ASSERT_EQ(::prlimit(chat.pid(), RLIMIT_AS, &limit, nullptr), 0) << std::strerror(errno);

    // A 512 MiB message ('a' under a zero mask: valid UTF-8 all along).
    constexpr std::uint64_t message = 512ull << 20;
    c->send(encode_frame(op_text, "", {.declared_length = message, .mask_key = 0}));
    const std::string chunk(1 << 20, 'a');
    for (std::uint64_t sent = 0; sent < message && chat.alive(); sent += chunk.size()) {
        if (!c->send(chunk) || chat.log().find("bad_alloc") != std::string::npos) {
            break;
        }
    }
    const auto until = clock::now() + 10s;
    while (chat.log().find("bad_alloc") == std::string::npos && clock::now() < until) {
        std::this_thread::sleep_for(10ms);
    }
    const auto log = chat.log();
    EXPECT_NE(log.find("bad_alloc"), std::string::npos) << log;
    EXPECT_EQ(log.find("cannot start"), std::string::npos) << log;
}

// Values that would silently disable a limit, or make no sense, are refused: exit 2 with
// a message naming the option, and nothing listens.
TEST(chat_hardening, senseless_option_values_are_usage_errors) {
    const std::vector<std::vector<std::string>> cases = {
        {"--max-message-bytes", "0"},
        {"--max-message-bytes", "-5"},
        {"--max-message-bytes", "2000", "--client-queue-bytes", "1000"},
        {"--handshake-timeout", "-1"},
        {"--handshake-timeout", "0"},
        {"--threads", "0"},
        {"--allow-origin", "evil.example"},
        {"--allow-origin", "http://a.example/path"}};
    for (const auto& args : cases) {
        chat_process chat({.args = args, .wait_listening = false});
        const auto status = chat.wait_exit(5000ms);
        ASSERT_TRUE(status) << args[0] << " " << args[1] << " was accepted";
        EXPECT_TRUE(WIFEXITED(*status));
        EXPECT_EQ(WEXITSTATUS(*status), 2) << args[0] << " " << args[1] << "\n" << chat.log();
        EXPECT_NE(chat.log().find(args[0]), std::string::npos) << chat.log();
    }
}

}  // namespace
}  // namespace broadcaster::test::ws
