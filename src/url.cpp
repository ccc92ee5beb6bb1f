#include "url_detail.hpp"

#include <broadcaster/error.hpp>
#include <broadcaster/url.hpp>

#include <boost/url/parse.hpp>

#include <algorithm>
#include <array>
#include <cctype>

namespace broadcaster {
namespace {

constexpr std::string_view mask = "***";

// Query options whose values are shown: every backend's options that can never carry
// a secret. Everything else is masked, so a new or misspelled secret option
// (`kafka.sasl.oauthbearer.client.secret`, `pass%77ord`) never shows.
constexpr std::array harmless_options = {
    // every network backend
    "connect_timeout_ms", "publish_timeout_ms", "reconnect_min_ms", "reconnect_max_ms",
    // redis://
    "client_name", "tls_verify", "tls_ca_file", "tls_server_name", "max_payload_bytes",
    // postgres:// (ours, then libpq's)
    "payload_table", "payload_retention_s", "sslmode", "application_name", "connect_timeout",
    "target_session_attrs", "gssencmode", "channel_binding", "sslrootcert", "keepalives",
    "keepalives_idle", "keepalives_interval", "keepalives_count",
    // kafka://
    "topic_prefix"};

// librdkafka settings (after the kafka., producer. or consumer. prefix) shown likewise.
constexpr std::array harmless_kafka_settings = {"acks",
                                                "api.version.request",
                                                "auto.offset.reset",
                                                "batch.num.messages",
                                                "batch.size",
                                                "broker.address.family",
                                                "client.id",
                                                "compression.codec",
                                                "compression.type",
                                                "debug",
                                                "delivery.timeout.ms",
                                                "enable.idempotence",
                                                "enable.ssl.certificate.verification",
                                                "fetch.max.bytes",
                                                "fetch.min.bytes",
                                                "fetch.wait.max.ms",
                                                "heartbeat.interval.ms",
                                                "linger.ms",
                                                "max.in.flight.requests.per.connection",
                                                "max.partition.fetch.bytes",
                                                "message.max.bytes",
                                                "message.timeout.ms",
                                                "queue.buffering.max.kbytes",
                                                "queue.buffering.max.messages",
                                                "queue.buffering.max.ms",
                                                "reconnect.backoff.max.ms",
                                                "reconnect.backoff.ms",
                                                "request.timeout.ms",
                                                "retries",
                                                "retry.backoff.ms",
                                                "sasl.mechanism",
                                                "sasl.mechanisms",
                                                "security.protocol",
                                                "session.timeout.ms",
                                                "socket.keepalive.enable",
                                                "socket.timeout.ms",
                                                "ssl.ca.location",
                                                "ssl.endpoint.identification.algorithm",
                                                "statistics.interval.ms",
                                                "topic.metadata.refresh.interval.ms"};

// Options whose names are shown (their values are not): the secret ones of libpq.
// Any other name is masked with its value: it may be the tail of a secret value cut
// by a raw '&' ("password=ab&cd=ef").
constexpr std::array secret_options = {"password", "sslpassword", "sslkey",  "sslcert",
                                       "sslcrl",   "passfile",    "user",    "dbname",
                                       "host",     "hostaddr",    "options", "service"};

int hex_value(char c) {
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

// An option name as the backends see it (percent-decoded), lower-cased.
std::string decoded_name(std::string_view key) {
    std::string out;
    for (std::size_t i = 0; i < key.size(); ++i) {
        char c = key[i];
        if (c == '%' && i + 2 < key.size() && hex_value(key[i + 1]) >= 0 &&
            hex_value(key[i + 2]) >= 0) {
            c = static_cast<char>(hex_value(key[i + 1]) * 16 + hex_value(key[i + 2]));
            i += 2;
        }
        out.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
    }
    return out;
}

bool listed(const auto& list, std::string_view name) {
    return std::find(list.begin(), list.end(), name) != list.end();
}

// A librdkafka setting behind its prefix ("kafka.sasl.password"), or empty.
std::string_view kafka_setting(std::string_view name) {
    for (std::string_view prefix : {"kafka.", "producer.", "consumer."}) {
        if (name.starts_with(prefix)) {
            name.remove_prefix(prefix.size());
            const bool well_formed =
                !name.empty() && std::all_of(name.begin(), name.end(), [](unsigned char c) {
                    return std::islower(c) || std::isdigit(c) || c == '.' || c == '_';
                });
            return well_formed ? name : std::string_view();
        }
    }
    return {};
}

bool is_harmless(std::string_view key) {
    const auto name = decoded_name(key);
    return listed(harmless_options, name) || listed(harmless_kafka_settings, kafka_setting(name));
}

bool is_known(std::string_view key) {
    const auto name = decoded_name(key);
    return is_harmless(key) || listed(secret_options, name) || !kafka_setting(name).empty();
}

// Appends `text` with control characters escaped (%XX): a redacted URL goes into log
// lines, which a newline must not split.
void append_printable(std::string& out, std::string_view text) {
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char c : text) {
        if (c < 0x20 || c == 0x7f) {
            out.push_back('%');
            out.push_back(hex[c >> 4]);
            out.push_back(hex[c & 15]);
        } else {
            out.push_back(static_cast<char>(c));
        }
    }
}

// Masks the value of every `key=value` pair of `query` but the harmless ones, and
// the name too when it is not an option we know, as well as every pair without a
// value (either may be the tail of a secret value cut by a raw '&').
void append_redacted_query(std::string& out, std::string_view query) {
    bool first = true;
    while (true) {
        const auto amp = query.find('&');
        const auto pair = query.substr(0, amp);
        if (!first) {
            out.push_back('&');
        }
        first = false;
        const auto eq = pair.find('=');
        if (pair.empty()) {
            // nothing to hide
        } else if (eq == std::string_view::npos) {
            append_printable(out, is_harmless(pair) ? pair : mask);
        } else if (is_harmless(pair.substr(0, eq))) {
            append_printable(out, pair);
        } else if (is_known(pair.substr(0, eq))) {
            append_printable(out, pair.substr(0, eq + 1));
            out.append(mask);
        } else {
            out.append(mask);
        }
        if (amp == std::string_view::npos) {
            break;
        }
        query.remove_prefix(amp + 1);
    }
}

// The length of a URI scheme followed by ':' at the start of `url`, or 0.
std::size_t scheme_length(std::string_view url) {
    if (url.empty() || !std::isalpha(static_cast<unsigned char>(url.front()))) {
        return 0;
    }
    const auto end = std::find_if(url.begin() + 1, url.end(), [](unsigned char c) {
        return !(std::isalnum(c) || c == '+' || c == '-' || c == '.');
    });
    return end != url.end() && *end == ':' ? static_cast<std::size_t>(end - url.begin()) : 0;
}

}  // namespace

std::string redact_url(std::string_view url) {
    std::string out;
    // "scheme://" (or "scheme:" and any slashes) is kept.
    std::size_t rest_begin = 0;
    if (const auto scheme = scheme_length(url)) {
        rest_begin = scheme + 1;
        while (rest_begin < url.size() && url[rest_begin] == '/') {
            ++rest_begin;
        }
        // Without "//" there is no authority, so what precedes an '@' need not be a
        // scheme at all ("user:secret@host"): keep nothing of it.
        if (url.substr(scheme, 3) != "://" && url.find('@', rest_begin) != std::string_view::npos) {
            rest_begin = 0;
        }
    }
    append_printable(out, url.substr(0, rest_begin));
    auto rest = url.substr(rest_begin);

    // The user information ends at the LAST '@': a password may hold a raw '@', '/',
    // '?', '#', ':' or '&' (generated passwords do), which would end the authority for
    // a URL parser, so none of them may end it here.
    const auto at = rest.rfind('@');
    if (at != std::string_view::npos) {
        out.append(mask);
        if (rest.substr(0, at).find_first_of("?#") != std::string_view::npos) {
            // Or that '@' is part of a query value or a fragment, and what follows it
            // is the rest of a secret: mask everything.
            return out;
        }
        out.push_back('@');
        rest.remove_prefix(at + 1);
    }

    const auto fragment = rest.find('#');
    const auto before_fragment = rest.substr(0, fragment);
    const auto question = before_fragment.find('?');
    append_printable(out, before_fragment.substr(0, question));  // host, port, path
    if (question != std::string_view::npos) {
        out.push_back('?');
        append_redacted_query(out, before_fragment.substr(question + 1));
    }
    if (fragment != std::string_view::npos) {
        // No backend uses a fragment; it may be the tail of a secret cut by a raw '#'.
        out.push_back('#');
        if (fragment + 1 < rest.size()) {
            out.append(mask);
        }
    }
    return out;
}

namespace detail {

bool harmless_option(std::string_view name) {
    return is_harmless(name);
}

}  // namespace detail

boost::system::result<std::string> url_scheme(std::string_view url) {
    const auto parsed = boost::urls::parse_uri(url);
    if (!parsed) {
        return make_error_code(error::invalid_url);
    }
    std::string scheme(parsed->scheme());
    std::transform(scheme.begin(), scheme.end(), scheme.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return scheme;
}

}  // namespace broadcaster
