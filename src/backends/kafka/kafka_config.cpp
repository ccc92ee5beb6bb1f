#include "kafka_config.hpp"

#include "../../url_detail.hpp"
#include "../url_options.hpp"
#include "rdkafka_api.hpp"

#include <broadcaster/error.hpp>

#include <boost/url/parse.hpp>
#include <boost/url/url_view.hpp>

#include <algorithm>
#include <cctype>
#include <memory>

namespace broadcaster::detail {
namespace {

constexpr std::string_view scheme_prefix = "kafka://";

bool legal_topic_char(unsigned char c) {
    return std::isalnum(c) || c == '.' || c == '_' || c == '-';
}

// One "host:port" of the broker list (IPv6 as "[::1]:9092"); the port defaults to
// Kafka's 9092.
std::string parse_broker(const backend_config& config, std::string_view broker) {
    auto host = broker;
    std::string_view port;
    const auto colon = broker.rfind(':');
    const auto bracket = broker.rfind(']');
    if (colon != std::string_view::npos && (bracket == std::string_view::npos || colon > bracket)) {
        host = broker.substr(0, colon);
        port = broker.substr(colon + 1);
    }
    if (host.empty() || (host.front() == '[') != (host.back() == ']')) {
        // Not the text: a password with a raw '/', '?' or '#' ends up here.
        invalid_url(config, "a broker address is not host:port");
    }
    if (!port.empty()) {
        const auto number = option_number(config, "port", std::string(port));
        if (number < 1 || number > 65535) {
            invalid_url(config, "a broker port is out of range (1 to 65535)");
        }
        return std::string(host) + ":" + std::string(port);
    }
    return std::string(host) + ":9092";
}

// Checks librdkafka settings by applying them to a throwaway configuration.
void check_settings(const backend_config& config, const kafka_settings& settings) {
    const auto& kafka = rdkafka();
    std::unique_ptr<rd_kafka_conf_t, decltype(kafka.rd_kafka_conf_destroy)> conf(
        kafka.rd_kafka_conf_new(), kafka.rd_kafka_conf_destroy);
    char error[512];
    for (const auto& [name, value] : settings) {
        if (kafka.rd_kafka_conf_set(conf.get(), name.c_str(), value.c_str(), error, sizeof error) !=
            RD_KAFKA_CONF_OK) {
            // librdkafka's message may quote the value: only for harmless settings.
            invalid_url(config,
                        "librdkafka setting '" + name + "' was refused: " +
                            (harmless_option("kafka." + name) ? std::string(error)
                                                              : std::string("invalid value")));
        }
    }
}

}  // namespace

kafka_config parse_kafka_url(const backend_config& config) {
    kafka_config out(config);

    std::string lowered = config.url.substr(0, scheme_prefix.size());
    std::transform(lowered.begin(), lowered.end(), lowered.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    if (lowered != scheme_prefix) {
        invalid_url(config, "expected kafka://host:port[,host:port...]");
    }
    // Boost.URL cannot parse a list of hosts: split the authority off by hand and let
    // Boost.URL decode the rest (user information, query) around a placeholder host.
    const std::string_view rest = std::string_view(config.url).substr(scheme_prefix.size());
    const auto authority_end = rest.find_first_of("/?#");
    const auto authority = rest.substr(0, authority_end);
    const auto at = authority.rfind('@');
    const auto hosts = at == std::string_view::npos ? authority : authority.substr(at + 1);
    const std::string userinfo =
        at == std::string_view::npos ? "" : std::string(authority.substr(0, at + 1));
    const std::string tail =
        authority_end == std::string_view::npos ? "" : std::string(rest.substr(authority_end));

    const std::string rebuilt = "kafka://" + userinfo + "placeholder" + tail;
    const auto parsed = boost::urls::parse_uri(rebuilt);
    if (!parsed) {
        invalid_url(config, "not a valid URL");
    }
    const boost::urls::url_view url = *parsed;
    if (!url.path().empty() && url.path() != "/") {
        invalid_url(config, "a kafka:// URL has no path (topics are channels)");
    }

    std::size_t begin = 0;
    while (begin <= hosts.size()) {
        const auto comma = std::min(hosts.find(',', begin), hosts.size());
        const auto broker = hosts.substr(begin, comma - begin);
        if (broker.empty()) {
            invalid_url(config, "expected kafka://host:port[,host:port...]");
        }
        if (!out.bootstrap_servers.empty()) {
            out.bootstrap_servers += ',';
        }
        out.bootstrap_servers += parse_broker(config, broker);
        begin = comma + 1;
    }

    // User information means SASL (PLAIN unless the URL's settings say otherwise).
    if (url.has_userinfo()) {
        out.common.emplace_back("security.protocol", "sasl_plaintext");
        out.common.emplace_back("sasl.mechanisms", "PLAIN");
        out.common.emplace_back("sasl.username", url.user());
        out.common.emplace_back("sasl.password", url.password());
    }

    for (const auto& param : url.params()) {
        const std::string key = param.key;
        const std::string value = param.value;
        const auto setting = [&](std::string_view prefix) { return key.substr(prefix.size()); };
        if (key == "topic_prefix") {
            if (!value.empty() && kafka_topic(value, "x").empty()) {
                invalid_url(config, "topic_prefix may only contain [a-zA-Z0-9._-]");
            }
            out.topic_prefix = value;
        } else if (out.take(config, key, value)) {
            // a connection option
        } else if (key.starts_with("kafka.") && key.size() > 6) {
            out.common.emplace_back(setting("kafka."), value);
        } else if (key.starts_with("producer.") && key.size() > 9) {
            out.producer.emplace_back(setting("producer."), value);
        } else if (key.starts_with("consumer.") && key.size() > 9) {
            out.consumer.emplace_back(setting("consumer."), value);
        } else {
            invalid_url(config, "unknown option '" + key +
                                    "' (librdkafka settings take a 'kafka.' prefix)");
        }
    }
    out.finish();
    check_settings(config, out.common);
    check_settings(config, out.producer);
    check_settings(config, out.consumer);
    return out;
}

std::string kafka_topic(const std::string& prefix, const std::string& channel) {
    std::string topic = prefix + channel;
    const bool legal = !channel.empty() && topic.size() <= 249 && topic != "." && topic != ".." &&
                       std::all_of(topic.begin(), topic.end(), legal_topic_char);
    return legal ? topic : std::string();
}

}  // namespace broadcaster::detail
