#pragma once

// The subcommands of the `broadcaster` tool and what they share.

#include <broadcaster/utf8.hpp>

#include <boost/system/error_code.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace cli {

// Exit statuses: scripts can tell the failures apart.
enum exit_status : int {
    ok = 0,
    failure = 1,         // anything else
    usage = 2,           // bad command line
    invalid_url = 3,     // malformed URL or a bad URL option
    unknown_scheme = 4,  // no backend for the scheme (or not built)
    unreachable = 5,     // cannot connect / authenticate within the connect timeout
    refused = 6,         // the broker refused a publish or a subscribe
    timed_out = 7,       // subscribe --timeout passed before --count messages came
};

// The exit status for an error of the library.
int status_for(const boost::system::error_code& ec, bool connecting);

// Prints "broadcaster: <what>" on stderr, as one line (control characters escaped).
void report(const std::string& what);

// `text` (a channel name) for an error line: in quotes, escaped (\n, \xNN for control
// characters and for bytes that are not UTF-8), cut after `limit` bytes with the
// whole length said.
std::string quoted(std::string_view text, std::size_t limit = 64);

struct publish_options {
    std::string url;
    std::string channel;
    std::optional<std::string> message;
    bool null_separated = false;
    std::string file;
};
int publish(const publish_options& options);

// How `subscribe` and `history` print an event.
struct output_format {
    bool with_channel = false;
    bool with_position = false;  // POSITION<TAB> first, or a "position" JSON field
    bool json = false;
};

struct subscribe_options {
    std::string url;
    std::vector<std::string> channels;
    output_format format;
    std::optional<std::string> since;  // one channel only
    std::size_t last = 0;
    std::uint64_t count = 0;  // 0: until interrupted
    double timeout = 0;       // seconds; 0: none
};
int subscribe(const subscribe_options& options);

struct history_options {
    std::string url;
    std::string channel;
    std::size_t limit = 10;  // 0: all the broker keeps
    output_format format;
};
int history(const history_options& options);

struct bench_options {
    std::string url;
    int subscribers = 1;
    int channels = 1;
    int publishers = 1;
    std::size_t size = 64;
    std::uint64_t count = 100'000;  // messages in all
    double duration = 0;            // seconds; replaces count when set
    double rate = 0;                // messages/s in all; 0: as fast as possible
    bool json = false;
    bool binary = false;  // every other message not UTF-8
};
int bench(const bench_options& options);

// JSON string literal of `text` (UTF-8), quotes included.
std::string json_string(std::string_view text);
using broadcaster::is_valid_utf8;
std::string base64(std::string_view bytes);

}  // namespace cli
