#include "postgres_config.hpp"

#include "../url_options.hpp"

#include <broadcaster/error.hpp>

#include <boost/url/parse.hpp>
#include <boost/url/url.hpp>

namespace broadcaster::detail {

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
        } else if (key == "payload_retention_s") {
            out.payload_retention = std::chrono::seconds(option_number(config, key, value));
        } else {
            ours = false;
        }
        it = ours ? params.erase(it) : std::next(it);
    }
    out.finish();
    out.conninfo = url.buffer();
    return out;
}

}  // namespace broadcaster::detail
