// `broadcaster publish`, `broadcaster subscribe` and `broadcaster history`.

#include "commands.hpp"

#include <broadcaster/blocking_broadcast.hpp>
#include <broadcaster/error.hpp>

#include <boost/asio/use_future.hpp>

#include <poll.h>
#include <unistd.h>
#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <fstream>
#include <iostream>
#include <iterator>
#include <mutex>
#include <semaphore>

namespace cli {

namespace {

using boost::system::error_code;

// Constructs and connects; reports and returns the exit status on failure.
std::optional<int> open(std::unique_ptr<broadcaster::blocking_broadcast>& bc,
                        const std::string& url) {
    try {
        bc = std::make_unique<broadcaster::blocking_broadcast>(url);
    } catch (const boost::system::system_error& e) {
        report(e.what());  // names the URL, password masked
        return status_for(e.code(), false);
    }
    try {
        bc->connect();
    } catch (const boost::system::system_error& e) {
        report("cannot connect to " + bc->async().url() + ": " + e.code().message());
        return status_for(e.code(), true);
    }
    return std::nullopt;
}

// The channels for an error line: the first few, each escaped and shortened.
std::string channel_names(const std::vector<std::string>& channels) {
    constexpr std::size_t shown = 3;
    std::string out;
    for (std::size_t i = 0; i < channels.size() && i < shown; ++i) {
        out += (i ? ", " : "") + quoted(channels[i]);
    }
    if (channels.size() > shown) {
        out += " and " + std::to_string(channels.size() - shown) + " more";
    }
    return out;
}

// True once nobody reads standard output any more (the reader of a pipe is gone):
// with SIGPIPE ignored, a write would only fail, so look before waiting on.
bool stdout_closed() {
    pollfd out{STDOUT_FILENO, 0, 0};
    return ::poll(&out, 1, 0) == 1 && (out.revents & (POLLERR | POLLHUP)) != 0;
}

// After a failed write: EPIPE (the reader went away, as `| head -1` does) is how a
// pipeline ends and needs no message.
int write_failed(int error) {
    if (error != EPIPE) {
        report(std::string("cannot write to standard output: ") +
               (error ? std::strerror(error) : "write failed"));
    }
    return failure;
}

// `"name":"value"` when `value` is UTF-8, else `"name_base64":"..."`: JSON carries no bytes.
void json_field(std::string_view name, std::string_view value) {
    if (is_valid_utf8(value)) {
        std::cout << '"' << name << "\":" << json_string(value);
    } else {
        std::cout << '"' << name << "_base64\":\"" << base64(value) << '"';
    }
}

// Prints one event as `format` asks, flushed; false if the write failed.
bool print(const broadcaster::event& ev, const output_format& format) {
    if (format.json) {
        std::cout << '{';
        json_field("channel", ev.channel());
        std::cout << ',';
        json_field("message", ev.message());
        if (format.with_position) {
            std::cout << ',';
            json_field("position", ev.position());
        }
        std::cout << "}\n";
    } else {
        if (format.with_position) {
            std::cout << ev.position() << '\t';
        }
        if (format.with_channel) {
            std::cout << ev.channel() << '\t';
        }
        std::cout << ev.message() << '\n';
    }
    return static_cast<bool>(std::cout.flush());
}

std::atomic<bool> interrupted{false};

extern "C" void on_signal(int) {
    interrupted = true;
}

}  // namespace

int publish(const publish_options& options) {
    std::unique_ptr<broadcaster::blocking_broadcast> bc;
    if (auto status = open(bc, options.url)) {
        return *status;
    }
    // Up to `window` publishes in flight: the backend pipelines them, and every one
    // must be acknowledged before the tool exits 0.
    constexpr std::ptrdiff_t window = 1024;
    std::counting_semaphore<window> slots(window);
    std::mutex mutex;
    error_code first_error;
    std::uint64_t failed = 0;
    const auto send = [&](std::string message) {
        slots.acquire();
        bc->async().async_publish(options.channel, std::move(message), [&](error_code ec) {
            if (ec) {
                std::lock_guard lock(mutex);
                if (!failed++) {
                    first_error = ec;
                }
            }
            slots.release();
        });
    };

    if (options.message) {
        send(*options.message);
    } else if (!options.file.empty()) {
        std::ifstream in(options.file, std::ios::binary);
        if (!in) {
            report("cannot read " + options.file);
            return failure;
        }
        send(std::string(std::istreambuf_iterator<char>(in), {}));
    } else {
        const char separator = options.null_separated ? '\0' : '\n';
        std::string line;
        while (std::getline(std::cin, line, separator)) {
            send(std::move(line));
            line.clear();
        }
    }
    for (std::ptrdiff_t i = 0; i < window; ++i) {
        slots.acquire();  // every publish has completed
    }
    if (failed) {
        report("publish to " + bc->async().url() + " channel " + quoted(options.channel) +
               " failed: " + first_error.message() + " (" + std::to_string(failed) +
               " message(s) not accepted)");
        return status_for(first_error, false);
    }
    return ok;
}

int subscribe(const subscribe_options& options) {
    // The library refuses it too, but only once connected and less plainly.
    if (options.since && options.channels.size() != 1) {
        report("--since takes exactly one channel (a position belongs to one channel), not " +
               std::to_string(options.channels.size()));
        return usage;
    }
    std::unique_ptr<broadcaster::blocking_broadcast> bc;
    if (auto status = open(bc, options.url)) {
        return *status;
    }
    broadcaster::subscribe_options sub_options;
    sub_options.since = options.since;
    sub_options.last = options.last;
    if (options.since || options.last) {
        // The history is queued at once: room for it, and an overflow ends the
        // subscription with an error instead of silently skipping messages.
        sub_options.capacity +=
            options.last * options.channels.size() + (options.since ? 100'000 : 0);
        sub_options.policy = broadcaster::overflow_policy::close;
    }
    broadcaster::subscriber sub;
    try {
        sub = bc->subscribe(options.channels, sub_options);
    } catch (const boost::system::system_error& e) {
        report("cannot subscribe to " + channel_names(options.channels) + " on " +
               bc->async().url() + ": " + e.code().message());
        return status_for(e.code(), false);
    }
    std::signal(SIGINT, on_signal);
    std::signal(SIGTERM, on_signal);
    std::cerr << "subscribed" << std::endl;

    const auto deadline = std::chrono::steady_clock::now() +
                          std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                              std::chrono::duration<double>(options.timeout));
    std::uint64_t received = 0;
    while (!interrupted && (options.count == 0 || received < options.count)) {
        if (options.timeout > 0 && std::chrono::steady_clock::now() >= deadline) {
            report("timed out after " + std::to_string(received) + " of " +
                   std::to_string(options.count) + " message(s)");
            return timed_out;
        }
        auto ev = sub.receive_for(std::chrono::milliseconds(100));
        if (!ev) {
            if (!sub.is_open()) {
                report("subscription ended: " + sub.error().message());
                return failure;
            }
            if (stdout_closed()) {
                return write_failed(EPIPE);
            }
            continue;
        }
        ++received;
        errno = 0;  // what a failed write leaves here tells EPIPE apart
        if (!print(*ev, options.format)) {
            return write_failed(errno);
        }
    }
    return ok;
}

int history(const history_options& options) {
    std::unique_ptr<broadcaster::blocking_broadcast> bc;
    if (auto status = open(bc, options.url)) {
        return *status;
    }
    std::vector<broadcaster::event> events;
    try {
        events = bc->async()
                     .async_history(options.channel, options.limit, boost::asio::use_future)
                     .get();
    } catch (const boost::system::system_error& e) {
        report("cannot read the history of " + quoted(options.channel) + " on " +
               bc->async().url() + ": " + e.code().message());
        return status_for(e.code(), false);
    }
    for (const auto& ev : events) {
        errno = 0;  // what a failed write leaves here tells EPIPE apart
        if (!print(ev, options.format)) {
            return write_failed(errno);
        }
    }
    return ok;
}

}  // namespace cli
