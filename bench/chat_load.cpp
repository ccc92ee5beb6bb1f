// Load generator for broadcaster-chat: C WebSocket clients spread over one or more
// instances, S of them also senders. Each message carries its sender, a sequence
// number and a timestamp; every client checks what it receives.
//
//   bench_chat_load --ports 8001,8002 --clients 100 --senders 10 --messages 5000 --window 100
//   bench_chat_load --ports 8001 --rate 500 --duration 10       # fixed rate, all senders
//   ... --pids 1234,1235   # also report those servers' CPU per delivery and peak RSS
//   bench_chat_load --ports 8001 --pids 1234 --clients 10000 --idle   # memory per idle client
//   ... --results out.txt   # also write the figures as name=value lines, for scripts
//
// Reports deliveries/s, loss, duplicates, per-sender order violations, latency
// p50/p90/p99, and this process's own CPU share (to tell when it is the limit). With
// --idle, it only joins the clients to the room and reports the servers' memory per
// client instead.

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>

#include <CLI/CLI.hpp>

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <iostream>
#include <memory>
#include <sstream>

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;
using boost::system::error_code;
using clock_type = std::chrono::steady_clock;

struct totals {
    std::uint64_t expected_per_client = 0;
    std::uint64_t delivered = 0;
    std::uint64_t duplicates = 0;
    std::uint64_t reordered = 0;
    std::uint64_t connected = 0;
    std::vector<float> latency_us;
};

class client : public std::enable_shared_from_this<client> {
  public:
    // `read_buffer`: bytes read from the socket at once, to start with.
    client(asio::io_context& io, totals& t, int senders, int index, std::size_t read_buffer)
        : ws_(io), in_(read_buffer, '\0'), totals_(t), last_(senders, 0), index_(index) {}

    void start(unsigned short port) {
        ws_.next_layer().async_connect(
            {asio::ip::address_v4::loopback(), port}, [self = shared_from_this()](error_code ec) {
                if (ec) {
                    throw std::runtime_error("connect: " + ec.message());
                }
                self->ws_.next_layer().set_option(tcp::no_delay(true), ec);
                self->ws_.async_handshake("127.0.0.1", "/", [self](error_code ec) {
                    if (ec) {
                        throw std::runtime_error("handshake: " + ec.message());
                    }
                    self->ws_.text(true);
                    ++self->totals_.connected;
                    self->read();
                });
            });
    }

    // Sends one message; `done` runs when it is written.
    template <typename Done>
    void send(std::string message, Done done) {
        outgoing_ = std::move(message);
        ws_.async_write(asio::buffer(outgoing_),
                        [self = shared_from_this(), done](error_code ec, std::size_t) {
                            if (ec) {
                                throw std::runtime_error("write: " + ec.message());
                            }
                            done();
                        });
    }

    std::uint64_t received() const { return received_; }

    // The highest sequence number received from `sender`.
    std::uint64_t seen_from(int sender) const { return last_[sender]; }

    // Called whenever this client receives a message it sent itself.
    void on_own_message(std::function<void()> callback) { on_own_message_ = std::move(callback); }

  private:
    // After the handshake the client reads the socket in bulk and splits the server's
    // frames itself (unmasked; text, or the close): Beast's per-message reads cost
    // this single-threaded generator more CPU than the server spends per delivery.
    void read() {
        if (in_.size() - have_ < 4096) {
            in_.resize(in_.size() * 2);
        }
        ws_.next_layer().async_read_some(asio::buffer(in_.data() + have_, in_.size() - have_),
                                         [self = shared_from_this()](error_code ec, std::size_t n) {
                                             if (ec) {
                                                 return;
                                             }
                                             self->have_ += n;
                                             if (self->split_frames()) {
                                                 self->read();
                                             }
                                         });
    }

    // Takes every complete frame from the input; false once the server closed.
    bool split_frames() {
        const auto* data = reinterpret_cast<const unsigned char*>(in_.data());
        std::size_t at = 0;
        for (;;) {
            if (have_ - at < 2) {
                break;
            }
            const unsigned opcode = data[at] & 0x0f;
            if (data[at + 1] & 0x80) {
                throw std::runtime_error("the server masked a frame");
            }
            std::size_t length = data[at + 1] & 0x7f;
            std::size_t header = 2;
            if (length == 126) {
                header = 4;
            } else if (length == 127) {
                header = 10;
            }
            if (have_ - at < header) {
                break;
            }
            if (header > 2) {
                length = 0;
                for (std::size_t i = 2; i < header; ++i) {
                    length = length << 8 | data[at + i];
                }
            }
            if (have_ - at < header + length) {
                break;
            }
            if (opcode == 0x8) {
                return false;
            }
            if (opcode == 0x1) {
                take(in_.data() + at + header, length);
            }
            at += header + length;
        }
        std::memmove(in_.data(), in_.data() + at, have_ - at);
        have_ -= at;
        return true;
    }

    // "sender seq timestamp padding"
    void take(const char* data, std::size_t size) {
        const auto end = data + size;
        unsigned sender = 0;
        std::uint64_t seq = 0;
        clock_type::rep sent = 0;
        auto p = std::from_chars(data, end, sender).ptr;
        p = std::from_chars(p + 1, end, seq).ptr;
        std::from_chars(p + 1, end, sent);
        ++received_;
        ++totals_.delivered;
        if (sender < last_.size()) {
            if (seq == last_[sender]) {
                ++totals_.duplicates;
            } else if (seq < last_[sender]) {
                ++totals_.reordered;
            }
            last_[sender] = std::max(last_[sender], seq);
        }
        if (static_cast<int>(sender) == index_ && on_own_message_) {
            on_own_message_();
        }
        totals_.latency_us.push_back(
            static_cast<float>(clock_type::now().time_since_epoch().count() - sent) / 1000.0f);
    }

    websocket::stream<tcp::socket> ws_;
    std::string in_;
    std::size_t have_ = 0;  // bytes of `in_` read, not yet taken
    std::string outgoing_;
    totals& totals_;
    std::vector<std::uint64_t> last_;  // highest sequence seen per sender (1-based)
    const int index_;                  // as a sender
    std::function<void()> on_own_message_;
    std::uint64_t received_ = 0;
};

std::vector<std::string> split(const std::string& text) {
    std::vector<std::string> out;
    std::stringstream in(text);
    for (std::string item; std::getline(in, item, ',');) {
        if (!item.empty()) {
            out.push_back(item);
        }
    }
    return out;
}

struct cpu_times {
    double user = 0;
    double system = 0;  // in the kernel: on loopback, mostly the TCP sends
};

cpu_times cpu_seconds(const std::string& pid) {
    std::ifstream stat("/proc/" + pid + "/stat");
    std::string content((std::istreambuf_iterator<char>(stat)), {});
    std::istringstream fields(content.substr(content.rfind(')') + 2));
    std::string skip;
    for (int i = 0; i < 11; ++i) {
        fields >> skip;
    }
    double utime = 0, stime = 0;
    fields >> utime >> stime;
    const auto tick = static_cast<double>(sysconf(_SC_CLK_TCK));
    return {utime / tick, stime / tick};
}

// A field of /proc/PID/status, in KiB: VmRSS, VmHWM (peak RSS), RssAnon (private memory).
long status_kib(const std::string& pid, const std::string& field) {
    std::ifstream status("/proc/" + pid + "/status");
    for (std::string line; std::getline(status, line);) {
        if (line.rfind(field + ":", 0) == 0) {
            return std::stol(line.substr(field.size() + 1));
        }
    }
    return 0;
}

// The figures of a run as name=value lines, for scripts (--results): the human report
// stays free to change its wording. Figures over several servers are their sum.
class results_file {
  public:
    explicit results_file(std::string path) : path_(std::move(path)) {}

    void add(const std::string& name, double value) {
        char text[64];
        std::snprintf(text, sizeof text, "%.9g", value);
        lines_ += name + "=" + text + "\n";
    }

    // Written once, at the end, so a script never reads a half-written file.
    void write() const {
        if (path_.empty()) {
            return;
        }
        std::ofstream out(path_);
        out << lines_;
        if (!out) {
            std::fprintf(stderr, "cannot write %s\n", path_.c_str());
        }
    }

  private:
    std::string path_;
    std::string lines_;
};

// --idle: what the servers' memory grows by per client joined to the room. Sampled once
// every client has joined, and again once one message has reached them all (buffers
// a first message makes a server allocate stay counted), each after a settling second;
// then the servers' CPU while the clients stay idle for two seconds.
int report_idle(asio::io_context& io, std::vector<std::shared_ptr<client>>& all, totals& t,
                const std::vector<std::string>& pids, const std::vector<long>& rss_before_kib,
                const std::vector<long>& private_before_kib, results_file& results) {
    const auto settle = [&] { io.run_for(std::chrono::seconds(1)); };
    const auto sample = [&](const char* field) {
        std::vector<long> kib;
        for (const auto& pid : pids) {
            kib.push_back(status_kib(pid, field));
        }
        return kib;
    };
    settle();
    const auto rss_joined = sample("VmRSS");
    const auto private_joined = sample("RssAnon");
    t.expected_per_client = 1;
    // "sender seq timestamp", as every message of this generator.
    all[0]->send("0 1 " + std::to_string(clock_type::now().time_since_epoch().count()), [] {});
    const auto clients = all.size();
    const auto until = clock_type::now() + std::chrono::seconds(30);
    while (t.delivered < clients && clock_type::now() < until) {
        io.run_one_for(std::chrono::milliseconds(20));
    }
    settle();
    const auto rss_message = sample("VmRSS");
    const auto private_message = sample("RssAnon");
    std::vector<cpu_times> cpu_before;
    for (const auto& pid : pids) {
        cpu_before.push_back(cpu_seconds(pid));
    }
    constexpr int idle_seconds = 2;
    io.run_for(std::chrono::seconds(idle_seconds));
    const auto mib = [](long kib) { return kib / 1024.0; };
    const auto per_client = [&](long after, long before) {
        return static_cast<double>(after - before) / static_cast<double>(clients);
    };
    std::printf("idle clients %zu, joined to the room; the message reached %llu of them\n", clients,
                static_cast<unsigned long long>(t.delivered));
    results.add("clients", static_cast<double>(clients));
    results.add("reached", static_cast<double>(t.delivered));
    double rss_per_client = 0, private_per_client = 0, idle_cpu_percent = 0;
    for (std::size_t i = 0; i < pids.size(); ++i) {
        std::printf(
            "server %s: RSS before %.1f MiB, joined %.1f MiB, after a message %.1f MiB; per "
            "client %.2f KiB joined, %.2f KiB after a message (private memory: %.1f, %.1f, "
            "%.1f MiB; %.2f KiB, %.2f KiB)\n",
            pids[i].c_str(), mib(rss_before_kib[i]), mib(rss_joined[i]), mib(rss_message[i]),
            per_client(rss_joined[i], rss_before_kib[i]),
            per_client(rss_message[i], rss_before_kib[i]), mib(private_before_kib[i]),
            mib(private_joined[i]), mib(private_message[i]),
            per_client(private_joined[i], private_before_kib[i]),
            per_client(private_message[i], private_before_kib[i]));
        const auto cpu = cpu_seconds(pids[i]);
        const double cpu_percent =
            100 * (cpu.user + cpu.system - cpu_before[i].user - cpu_before[i].system) /
            idle_seconds;
        std::printf("server %s: CPU while the clients are idle %.1f%% of one core\n",
                    pids[i].c_str(), cpu_percent);
        rss_per_client += per_client(rss_message[i], rss_before_kib[i]);
        private_per_client += per_client(private_message[i], private_before_kib[i]);
        idle_cpu_percent += cpu_percent;
    }
    results.add("server_rss_per_client_kib", rss_per_client);
    results.add("server_private_per_client_kib", private_per_client);
    results.add("server_idle_cpu_percent", idle_cpu_percent);
    results.write();
    return t.delivered == clients ? 0 : 1;
}

double own_cpu_seconds() {
    rusage usage{};
    getrusage(RUSAGE_SELF, &usage);
    return usage.ru_utime.tv_sec + usage.ru_utime.tv_usec / 1e6 + usage.ru_stime.tv_sec +
           usage.ru_stime.tv_usec / 1e6;
}

}  // namespace

int main(int argc, char** argv) {
    std::string ports_text = "8000";
    std::string pids_text;
    int clients = 100;
    int senders = 10;
    std::uint64_t messages = 1000;  // per sender, flood mode
    std::uint64_t window = 0;       // flood: per sender, not yet come back; 0: no limit
    double rate = 0;                // messages/s over all senders; 0: flood
    double duration = 10;
    std::size_t size = 64;
    bool idle = false;
    std::string results_path;
    CLI::App app{"Load generator for broadcaster-chat"};
    app.add_option("--ports", ports_text, "Instance ports, comma-separated")->capture_default_str();
    app.add_option("--pids", pids_text, "Server PIDs for CPU and RSS, comma-separated");
    app.add_option("--clients", clients)->capture_default_str();
    app.add_option("--senders", senders)->capture_default_str();
    app.add_option("--messages", messages, "Per sender (flood mode)")->capture_default_str();
    app.add_option("--window", window,
                   "Flood mode: a sender waits while this many of its messages have not come "
                   "back to it (0: no limit)")
        ->capture_default_str();
    app.add_option("--rate", rate, "Messages/s over all senders (fixed-rate mode)");
    app.add_option("--duration", duration, "Seconds (fixed-rate mode)")->capture_default_str();
    app.add_option("--size", size, "Message size in bytes")->capture_default_str();
    app.add_flag("--idle", idle,
                 "Only join the clients to the room, send one message, and report the "
                 "servers' memory (--pids) per client");
    app.add_option("--results", results_path,
                   "Also write the figures to this file as name=value lines, for scripts");
    CLI11_PARSE(app, argc, argv);
    results_file results(results_path);
    const auto ports = split(ports_text);
    const auto pids = split(pids_text);
    senders = std::min(senders, clients);

    std::vector<long> rss_before_kib;
    std::vector<long> private_before_kib;
    for (const auto& pid : pids) {
        rss_before_kib.push_back(status_kib(pid, "VmRSS"));
        private_before_kib.push_back(status_kib(pid, "RssAnon"));
    }
    asio::io_context io(1);
    totals t;
    std::vector<std::shared_ptr<client>> all;
    // At most this many handshakes at once: thousands of connects at once would
    // overflow the server's listen backlog, and SYN retries take a second or more.
    constexpr std::uint64_t connecting_at_most = 256;
    // An idle client receives little: a small read buffer (it grows when needed).
    const std::size_t read_buffer = idle ? 4096 : 65536;
    while (t.connected < static_cast<std::uint64_t>(clients)) {
        while (all.size() < static_cast<std::size_t>(clients) &&
               all.size() - t.connected < connecting_at_most) {
            const auto i = static_cast<int>(all.size());
            all.push_back(std::make_shared<client>(io, t, senders, i, read_buffer));
            all.back()->start(static_cast<unsigned short>(std::stoi(ports[i % ports.size()])));
        }
        io.run_one();
    }
    if (idle) {
        return report_idle(io, all, t, pids, rss_before_kib, private_before_kib, results);
    }

    const std::uint64_t per_sender =
        rate > 0 ? static_cast<std::uint64_t>(rate * duration / senders) : messages;
    t.expected_per_client = per_sender * senders;
    t.latency_us.reserve(t.expected_per_client * clients);
    std::vector<std::uint64_t> next(senders, 0);
    const auto message = [&](int sender) {
        std::string text = std::to_string(sender) + " " + std::to_string(++next[sender]) + " " +
                           std::to_string(clock_type::now().time_since_epoch().count()) + " ";
        text.resize(std::max(size, text.size()), 'x');
        return text;
    };

    std::vector<cpu_times> server_cpu_before;
    for (const auto& pid : pids) {
        server_cpu_before.push_back(cpu_seconds(pid));
    }
    const double own_before = own_cpu_seconds();
    const auto start = clock_type::now();
    asio::steady_timer pace(io);
    // Flood: each sender sends as fast as its socket takes messages; with a window, it
    // stops while that many of its messages have not come back to it yet.
    std::vector<bool> busy(senders, false);  // a write is in progress
    std::function<void(int)> flood = [&](int sender) {
        if (busy[sender] || next[sender] >= per_sender ||
            (window > 0 && next[sender] - all[sender]->seen_from(sender) >= window)) {
            return;  // resumes when the write completes or its message comes back
        }
        busy[sender] = true;
        all[sender]->send(message(sender), [&, sender] {
            busy[sender] = false;
            flood(sender);
        });
    };
    // Fixed rate: the senders take turns, one message every 1/rate seconds, so the
    // load is even (all senders at the same instant would send bursts of S messages).
    const auto due = [&](int sender) {
        const std::chrono::duration<double> offset((next[sender] * senders + sender) / rate);
        return start + std::chrono::duration_cast<clock_type::duration>(offset);
    };
    std::function<void()> step = [&] {
        const auto now = clock_type::now();
        auto wake = clock_type::time_point::max();
        for (int s = 0; s < senders; ++s) {
            if (busy[s] || next[s] >= per_sender) {
                continue;  // a busy sender steps again when its write completes
            }
            if (due(s) <= now) {
                busy[s] = true;
                all[s]->send(message(s), [&, s] {
                    busy[s] = false;
                    step();
                });
            } else {
                wake = std::min(wake, due(s));
            }
        }
        if (wake != clock_type::time_point::max()) {
            pace.expires_at(wake);  // cancels an earlier wait
            pace.async_wait([&](error_code ec) {
                if (!ec) {
                    step();
                }
            });
        }
    };
    if (rate > 0) {
        step();
    } else {
        for (int s = 0; s < senders; ++s) {
            all[s]->on_own_message([&, s] { flood(s); });
            flood(s);
        }
    }
    const auto expected = t.expected_per_client * clients;
    auto last_progress = clock_type::now();
    std::uint64_t last_delivered = 0;
    // The kernel keeps the peak RSS, shared library pages included; the peak of the
    // servers' private memory is sampled here.
    std::vector<long> peak_private_kib(pids.size(), 0);
    auto last_sample = clock_type::time_point();
    const auto sample_private = [&] {
        for (std::size_t i = 0; i < pids.size(); ++i) {
            peak_private_kib[i] = std::max(peak_private_kib[i], status_kib(pids[i], "RssAnon"));
        }
        last_sample = clock_type::now();
    };
    while (t.delivered < expected) {
        if (clock_type::now() - last_sample > std::chrono::milliseconds(20)) {
            sample_private();
        }
        io.run_one_for(std::chrono::milliseconds(20));
        if (t.delivered != last_delivered) {
            last_delivered = t.delivered;
            last_progress = clock_type::now();
        } else if (clock_type::now() - last_progress > std::chrono::seconds(3)) {
            break;  // nothing more is coming: the rest is lost
        }
    }
    const std::chrono::duration<double> took = clock_type::now() - start;
    sample_private();
    const double own_cpu = own_cpu_seconds() - own_before;

    std::sort(t.latency_us.begin(), t.latency_us.end());
    const auto at = [&](double q) -> double {
        return t.latency_us.empty()
                   ? 0
                   : t.latency_us[static_cast<std::size_t>(q * (t.latency_us.size() - 1))];
    };
    std::printf("clients %d on %zu instance(s), %d senders, %s\n", clients, ports.size(), senders,
                rate > 0
                    ? ("fixed rate " + std::to_string(static_cast<int>(rate)) + " msg/s").c_str()
                : window > 0 ? ("flood, window " + std::to_string(window)).c_str()
                             : "flood");
    std::printf(
        "deliveries %llu of %llu in %.2f s: %.0f/s; lost %llu, duplicates %llu, "
        "order violations %llu\n",
        static_cast<unsigned long long>(t.delivered), static_cast<unsigned long long>(expected),
        took.count(), t.delivered / took.count(),
        static_cast<unsigned long long>(expected - std::min(expected, t.delivered)),
        static_cast<unsigned long long>(t.duplicates),
        static_cast<unsigned long long>(t.reordered));
    std::printf("latency p50 %.0f us, p90 %.0f us, p99 %.0f us\n", at(0.5), at(0.9), at(0.99));
    std::printf("load generator CPU %.0f%% of one core\n", 100 * own_cpu / took.count());
    double servers_cpu = 0;
    long peak_rss_kib = 0, peak_private_total_kib = 0;
    for (std::size_t i = 0; i < pids.size(); ++i) {
        const auto now = cpu_seconds(pids[i]);
        const double user = now.user - server_cpu_before[i].user;
        const double system = now.system - server_cpu_before[i].system;
        const double per_delivery = 1e6 / std::max<double>(t.delivered, 1);
        std::printf(
            "server %s: CPU %.2f s (%.2f us per delivery over all servers' share: user %.2f, "
            "kernel %.2f), peak RSS %.1f MiB (private %.1f MiB)\n",
            pids[i].c_str(), user + system, (user + system) * per_delivery, user * per_delivery,
            system * per_delivery, status_kib(pids[i], "VmHWM") / 1024.0,
            peak_private_kib[i] / 1024.0);
        servers_cpu += user + system;
        peak_rss_kib += status_kib(pids[i], "VmHWM");
        peak_private_total_kib += peak_private_kib[i];
    }
    if (pids.size() > 1) {
        std::printf("servers together: CPU %.2f s, %.2f us per delivery\n", servers_cpu,
                    1e6 * servers_cpu / std::max<double>(t.delivered, 1));
    }
    results.add("deliveries", static_cast<double>(t.delivered));
    results.add("expected", static_cast<double>(expected));
    results.add("seconds", took.count());
    results.add("deliveries_per_s", t.delivered / took.count());
    results.add("lost", static_cast<double>(expected - std::min(expected, t.delivered)));
    results.add("duplicates", static_cast<double>(t.duplicates));
    results.add("order_violations", static_cast<double>(t.reordered));
    results.add("latency_p50_us", at(0.5));
    results.add("latency_p90_us", at(0.9));
    results.add("latency_p99_us", at(0.99));
    results.add("generator_cpu_percent", 100 * own_cpu / took.count());
    if (!pids.empty()) {
        results.add("server_cpu_us_per_delivery",
                    1e6 * servers_cpu / std::max<double>(t.delivered, 1));
        results.add("server_peak_rss_kib", static_cast<double>(peak_rss_kib));
        results.add("server_peak_private_kib", static_cast<double>(peak_private_total_kib));
    }
    results.write();
    return t.delivered == expected && t.duplicates == 0 && t.reordered == 0 ? 0 : 1;
}
