// The floor under the chat room's fixed-rate CPU figure: what the kernel alone costs
// to send one small message to each of C loopback TCP connections, one `send` each,
// R times per second (what a server does when messages arrive one at a time). No
// WebSocket, no broadcaster: a sending thread and a thread that drains the sockets.
//
//   bench_loopback_floor --connections 100 --rate 500 --duration 5 --size 80
//
// Reports the sending thread's CPU per send, split into user and kernel time. With
// --io-uring (built when liburing is found), a round's sends are one io_uring
// submission instead of one system call each.

#include <CLI/CLI.hpp>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#ifdef BROADCASTER_BENCH_WITH_LIBURING
#include <liburing.h>
#endif

#include <atomic>
#include <chrono>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace {

void check(bool ok, const char* what) {
    if (!ok) {
        throw std::runtime_error(std::string(what) + " failed");
    }
}

// A connected pair of loopback TCP sockets: {server side, client side}.
std::pair<int, int> connected_pair(int listener, const sockaddr_in& address) {
    const int client = ::socket(AF_INET, SOCK_STREAM, 0);
    check(client >= 0, "socket");
    check(::connect(client, reinterpret_cast<const sockaddr*>(&address), sizeof address) == 0,
          "connect");
    const int server = ::accept(listener, nullptr, nullptr);
    check(server >= 0, "accept");
    const int one = 1;
    ::setsockopt(server, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return {server, client};
}

double seconds(const timeval& t) {
    return t.tv_sec + t.tv_usec / 1e6;
}

}  // namespace

int main(int argc, char** argv) {
    int connections = 100;
    double rate = 500;
    double duration = 5;
    std::size_t size = 80;
    bool use_io_uring = false;
    CLI::App app{"CPU per loopback TCP send, the floor under one send per delivery"};
    app.add_option("--connections", connections)->capture_default_str();
    app.add_option("--rate", rate, "Rounds per second (one send per connection)")
        ->capture_default_str();
    app.add_option("--duration", duration, "Seconds")->capture_default_str();
    app.add_option("--size", size, "Bytes per send")->capture_default_str();
#ifdef BROADCASTER_BENCH_WITH_LIBURING
    app.add_flag("--io-uring", use_io_uring, "A round's sends in one io_uring submission");
#endif
    CLI11_PARSE(app, argc, argv);

    const int listener = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t length = sizeof address;
    check(::bind(listener, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0, "bind");
    check(::listen(listener, connections) == 0, "listen");
    check(::getsockname(listener, reinterpret_cast<sockaddr*>(&address), &length) == 0,
          "getsockname");
    std::vector<int> senders;
    const int poller = ::epoll_create1(0);
    for (int i = 0; i < connections; ++i) {
        const auto [server, client] = connected_pair(listener, address);
        senders.push_back(server);
        epoll_event interest{};
        interest.events = EPOLLIN;
        interest.data.fd = client;
        ::epoll_ctl(poller, EPOLL_CTL_ADD, client, &interest);
    }

    std::atomic<bool> done = false;
    std::thread drain([&] {
        std::vector<epoll_event> ready(connections);
        std::vector<char> sink(65536);
        while (!done) {
            const int n = ::epoll_wait(poller, ready.data(), connections, 100);
            for (int i = 0; i < n; ++i) {
                [[maybe_unused]] auto got = ::read(ready[i].data.fd, sink.data(), sink.size());
            }
        }
    });

    const std::string message(size, 'x');
#ifdef BROADCASTER_BENCH_WITH_LIBURING
    io_uring ring{};
    if (use_io_uring) {
        check(io_uring_queue_init(static_cast<unsigned>(connections), &ring, 0) == 0,
              "io_uring_queue_init");
    }
    const auto send_round = [&] {
        if (!use_io_uring) {
            for (const int fd : senders) {
                check(::send(fd, message.data(), message.size(), 0) == static_cast<ssize_t>(size),
                      "send");
            }
            return;
        }
        for (const int fd : senders) {
            io_uring_prep_send(io_uring_get_sqe(&ring), fd, message.data(), message.size(), 0);
        }
        check(io_uring_submit_and_wait(&ring, static_cast<unsigned>(connections)) == connections,
              "io_uring_submit_and_wait");
        io_uring_cqe* cqe = nullptr;
        unsigned head = 0;
        unsigned seen = 0;
        io_uring_for_each_cqe(&ring, head, cqe) {
            check(cqe->res == static_cast<int>(size), "send (io_uring)");
            ++seen;
        }
        io_uring_cq_advance(&ring, seen);
    };
#else
    const auto send_round = [&] {
        for (const int fd : senders) {
            check(::send(fd, message.data(), message.size(), 0) == static_cast<ssize_t>(size),
                  "send");
        }
    };
#endif
    const auto rounds = static_cast<long>(rate * duration);
    rusage before{}, after{};
    getrusage(RUSAGE_THREAD, &before);
    const auto start = std::chrono::steady_clock::now();
    for (long round = 0; round < rounds; ++round) {
        std::this_thread::sleep_until(start + std::chrono::duration<double>(round / rate));
        send_round();
    }
    getrusage(RUSAGE_THREAD, &after);
    done = true;
    drain.join();

    const double sends = static_cast<double>(rounds) * connections;
    const double user = seconds(after.ru_utime) - seconds(before.ru_utime);
    const double system = seconds(after.ru_stime) - seconds(before.ru_stime);
    std::printf("%.0f sends of %zu bytes to %d loopback connections, %.0f rounds/s%s\n", sends,
                size, connections, rate, use_io_uring ? ", io_uring" : "");
    std::printf("sender CPU per send: %.2f us (user %.2f, kernel %.2f)\n",
                1e6 * (user + system) / sends, 1e6 * user / sends, 1e6 * system / sends);
    return 0;
}
