#include "postgres_config.hpp"

#include "../url_options.hpp"
#include "libpq_api.hpp"

#include <broadcaster/error.hpp>

#include <boost/url/parse.hpp>
#include <boost/url/url.hpp>
#include <boost/url/url_view.hpp>

namespace broadcaster::detail {

namespace {

// libpq refuses an option it does not know (a misspelt one, say) only when connecting,
// which the app would take for an unreachable server: ask libpq at once instead, so
// it is a configuration error. Its message may quote a value: never one of the URL's.
void check_with_libpq(const backend_config& config, boost::urls::url_view url) {
    char* error = nullptr;
    if (PQconninfoOption* options =
            libpq().PQconninfoParse(std::string(url.buffer()).c_str(), &error)) {
        libpq().PQconninfoFree(options);
        return;
    }
    std::string why = error ? error : "";
    libpq().PQfreemem(error);
    why = why.substr(0, why.find('\n'));
    bool quotes_a_value = false;
    const auto quotes = [&](std::string_view value) {
        quotes_a_value |= !value.empty() && why.find(value) != std::string::npos;
    };
    quotes(url.password());
    quotes(url.encoded_password());
    for (const auto param : url.params()) {
        quotes(param.value);
    }
    for (const auto param : url.encoded_params()) {
        quotes(param.value);
    }
    if (why.empty() || quotes_a_value) {
        why = "libpq does not accept its options";
    }
    invalid_url(config, why);
}

}  // namespace

postgres_config parse_postgres_url(const backend_config& config) {
    postgres_config out(config);

    auto parsed = boost::urls::parse_uri(config.url);
    if (!parsed) {
        invalid_url(config, "not a valid URL");
    }
    boost::urls::url url(*parsed);
    if (url.scheme() != "postgres" && url.scheme() != "postgresql") {
        invalid_url(config, "expected postgres:// or postgresql://");
    }
    // Our options are ours; everything else (sslmode, application_name, ...) is libpq's.
    auto params = url.params();
    for (auto it = params.begin(); it != params.end();) {
        const std::string key = (*it).key;
        const std::string value = (*it).value;
        bool ours = true;
        if (out.take(config, key, value)) {
            // a connection option
        } else if (key == "payload_table") {
            if (value.empty() || value.size() > 63) {
                invalid_url(config, "payload_table must be 1 to 63 bytes");
            }
            out.payload_table = value;
        } else if (key == "max_payload_bytes") {
            const auto n = option_number(config, key, value);
            if (n > static_cast<long long>(postgres_config::max_postgres_payload)) {
                invalid_url(config, "max_payload_bytes can be at most " +
                                        std::to_string(postgres_config::max_postgres_payload) +
                                        " (Postgres takes fields of up to 1 GB)");
            }
            out.max_payload_bytes = static_cast<std::size_t>(n);
        } else if (key == "history") {
            const auto n = option_number(config, key, value);
            if (static_cast<unsigned long long>(n) > postgres_config::max_history) {
                invalid_url(config, "history can be at most " +
                                        std::to_string(postgres_config::max_history));
            }
            out.history = static_cast<std::uint64_t>(n);
        } else if (key == "history_table") {
            if (value.empty() || value.size() > 63) {
                invalid_url(config, "history_table must be 1 to 63 bytes");
            }
            out.history_table = value;
        } else if (key == "payload_retention_s") {
            out.payload_retention = std::chrono::seconds(option_number(config, key, value));
        } else {
            ours = false;
        }
        it = ours ? params.erase(it) : std::next(it);
    }
    out.finish();
    check_with_libpq(config, url);
    out.conninfo = url.buffer();
    return out;
}

}  // namespace broadcaster::detail
