// broadcaster: publish, subscribe and benchmark on any backend from the command line.
//
//   broadcaster subscribe redis://127.0.0.1:6379 chat      # prints "subscribed" on stderr
//   broadcaster publish redis://127.0.0.1:6379 chat hello
//   seq 1000 | broadcaster publish redis://127.0.0.1:6379 chat
//   broadcaster history redis-stream://127.0.0.1:6379 chat --limit 20
//   broadcaster bench memory:// --subscribers 100 --count 1000000

#include "commands.hpp"

#include <CLI/CLI.hpp>

#include <cmath>
#include <cstdint>
#include <string>

namespace {

// A finite number above 0 (CLI::PositiveNumber lets NaN through).
const CLI::Validator positive_number(
    [](std::string& text) -> std::string {
        double value = 0;
        if (!CLI::detail::lexical_cast(text, value) || !std::isfinite(value) || value <= 0) {
            return "must be a number above 0, not " + text;
        }
        return {};
    },
    "POSITIVE");

// The output flags `subscribe` and `history` share.
void add_format_flags(CLI::App& command, cli::output_format& format) {
    command.add_flag("--with-channel", format.with_channel, "Prefix each line with CHANNEL<TAB>");
    command.add_flag("--with-position", format.with_position,
                     "Prefix each line with POSITION<TAB> (with --json: a position field)");
    command.add_flag("--json", format.json,
                     "One JSON object per line: channel, message (channel_base64, "
                     "message_base64 when not UTF-8)");
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"broadcaster: publish/subscribe on memory://, redis://, ... from the shell"};
    app.require_subcommand(1);

    cli::publish_options publish;
    auto* pub = app.add_subcommand(
        "publish",
        "Publish MESSAGE, or each line of standard input, on CHANNEL; exits 0 once "
        "the broker accepted every message");
    pub->add_option("url", publish.url, "Backend URL")->required();
    pub->add_option("channel", publish.channel, "Channel")->required();
    pub->add_option("message", publish.message, "Message (default: read standard input)");
    pub->add_flag("--null,-0", publish.null_separated,
                  "Standard input holds NUL-separated messages, not lines");
    pub->add_option("--file", publish.file, "Publish this whole file as one message");

    cli::subscribe_options subscribe;
    auto* sub = app.add_subcommand(
        "subscribe",
        "Print each message of the CHANNELs, one per line; writes 'subscribed' to "
        "stderr once the broker confirmed every channel");
    sub->add_option("url", subscribe.url, "Backend URL")->required();
    sub->add_option("channels", subscribe.channels, "Channels")->required();
    add_format_flags(*sub, subscribe.format);
    auto* since = sub->add_option("--since", subscribe.since,
                                  "Start with every message after POSITION (one channel; needs "
                                  "a backend with history)");
    sub->add_option("--last", subscribe.last,
                    "Start with the N most recent messages of each channel (needs a backend "
                    "with history)")
        ->check(CLI::Range(std::size_t{1}, std::size_t{1'000'000}))
        ->excludes(since);
    sub->add_option("--count", subscribe.count, "Exit 0 after N messages");
    sub->add_option("--timeout", subscribe.timeout,
                    "Exit with status 7 if the messages did not come within SECONDS")
        ->check(positive_number);

    cli::history_options history;
    auto* his = app.add_subcommand(
        "history",
        "Print the most recent messages of CHANNEL, oldest first, as subscribe does; needs a "
        "backend with history");
    his->add_option("url", history.url, "Backend URL")->required();
    his->add_option("channel", history.channel, "Channel")->required();
    his->add_option("--limit", history.limit, "Messages (0: all the broker keeps)")
        ->capture_default_str()
        ->check(CLI::Range(std::size_t{0}, std::size_t{1'000'000}));
    add_format_flags(*his, history.format);

    cli::bench_options bench;
    auto* ben = app.add_subcommand(
        "bench", "Measure publish throughput, deliveries/s, loss and latency through the library");
    ben->add_option("url", bench.url, "Backend URL")->required();
    ben->add_option("--subscribers", bench.subscribers, "Subscribers")
        ->capture_default_str()
        ->check(CLI::Range(0, 1'000'000));
    ben->add_option("--channels", bench.channels, "Channels (subscribers spread over them)")
        ->capture_default_str()
        ->check(CLI::Range(1, 100'000));
    ben->add_option("--publishers", bench.publishers, "Concurrent publishers (in-flight window)")
        ->capture_default_str()
        ->check(CLI::Range(1, 10'000));
    ben->add_option("--size", bench.size, "Message size in bytes (at least 16: the send time)")
        ->capture_default_str()
        ->check(CLI::Range(std::size_t{16}, std::size_t{1} << 30));
    ben->add_option("--count", bench.count, "Messages in all")
        ->capture_default_str()
        ->check(CLI::Range(std::uint64_t{1}, std::uint64_t{1} << 40));
    ben->add_option("--duration", bench.duration, "Seconds to run (instead of --count)")
        ->check(positive_number);
    ben->add_option("--rate", bench.rate, "Messages per second in all (default: unthrottled)")
        ->check(positive_number);
    ben->add_flag("--binary", bench.binary, "Make every other message binary (not UTF-8)");
    ben->add_flag("--json", bench.json, "Machine-readable output");

    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        const int status = app.exit(e);
        return status == 0 ? 0 : cli::usage;
    }
    if (*pub) {
        return cli::publish(publish);
    }
    if (*sub) {
        return cli::subscribe(subscribe);
    }
    if (*his) {
        return cli::history(history);
    }
    return cli::bench(bench);
}
