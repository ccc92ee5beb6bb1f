#pragma once

#include "../url_options.hpp"

#include <broadcaster/backend.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace broadcaster::detail {

// Everything a `nats://[user:password@|token@]host:port[,host:port...][?options]` URL
// says; see docs/backends/nats.md for the option table.
struct nats_config : connection_options {
    using connection_options::connection_options;

    std::vector<std::string> servers;  // "nats://host:port", no credentials
    std::string user;                  // with `password`: user/password authentication
    std::string password;
    std::string token;  // `token@host`: token authentication
    std::string client_name = "broadcaster";
    bool tls = false;
    bool tls_verify = true;
    std::string tls_ca_file;      // empty: the system's trusted CAs
    std::string tls_server_name;  // empty: the host of each server
    std::chrono::milliseconds ping_interval{10'000};
    int max_pings_out = 2;
    // Largest message a publish accepts; 0: the server's max_payload (1 MiB by default).
    std::size_t max_payload_bytes = 0;
    // `jetstream=STREAM`: history on, kept in that JetStream stream (docs/backends/nats.md).
    // Empty: core NATS, no history.
    std::string stream;
    // `history=N`: messages kept per channel (MaxMsgsPerSubject) when the stream is made.
    std::int64_t history = 10'000;

    // The subject a channel's messages are stored under, and the one the stream
    // republishes them to (with their sequence numbers) for subscribers.
    std::string stored_subject(std::string_view channel) const {
        return "broadcaster." + stream + "." + std::string(channel);
    }
    std::string live_prefix() const { return "broadcaster-live." + stream + "."; }
};

// Parses `config.url`. Throws system_error(error::invalid_url) naming what is wrong,
// with secrets masked.
nats_config parse_nats_url(const backend_config& config);

// Whether NATS can carry `channel` as a subject: 1 to max_subject_bytes bytes, tokens
// separated by '.', none empty, no whitespace or control characters, and no '*' or '>'
// (wildcards: a subscription would match other channels).
bool valid_nats_subject(const std::string& channel);

// Whether `pattern` is a NATS subject pattern with at least one wildcard: tokens
// separated by '.', each a subject token, `*` (any one token) or, last, `>` (one token
// or more). One without wildcards is a channel: subscribe to it as such.
bool valid_nats_pattern(const std::string& pattern);

// Whether a subscription's subject is a pattern (a channel never holds `*` or `>`).
inline bool is_nats_pattern(std::string_view subject) {
    return subject.find_first_of("*>") != std::string_view::npos;
}

// Longest channel name: the server's control line (PUB/SUB/MSG) is at most 4096 bytes.
inline constexpr std::size_t max_subject_bytes = 1024;

}  // namespace broadcaster::detail
