#include "backend_registry.hpp"

#include "backends/memory/memory_backend.hpp"
#ifdef BROADCASTER_WITH_REDIS
#include "backends/redis/redis_backend.hpp"
#include "backends/redis_cluster/cluster_backend.hpp"
#include "backends/redis_stream/redis_stream_backend.hpp"
#endif
#ifdef BROADCASTER_WITH_POSTGRES
#include "backends/postgres/postgres_backend.hpp"
#endif
#ifdef BROADCASTER_WITH_KAFKA
#include "backends/kafka/kafka_backend.hpp"
#endif
#ifdef BROADCASTER_WITH_NATS
#include "backends/nats/nats_backend.hpp"
#endif

#include <broadcaster/error.hpp>
#include <broadcaster/url.hpp>

#include <algorithm>
#include <cctype>
#include <map>
#include <mutex>

namespace broadcaster {
namespace {

// Schemes of built-in backends that a build may leave out, with the CMake option that
// brings each back; used to tell "not built" apart from "unknown".
struct optional_backend {
    std::string_view scheme;
    std::string_view option;
};
constexpr optional_backend optional_backends[] = {
    {"redis", "BROADCASTER_WITH_REDIS"},         {"rediss", "BROADCASTER_WITH_REDIS"},
    {"redis-cluster", "BROADCASTER_WITH_REDIS"}, {"rediss-cluster", "BROADCASTER_WITH_REDIS"},
    {"redis-stream", "BROADCASTER_WITH_REDIS"},  {"rediss-stream", "BROADCASTER_WITH_REDIS"},
    {"postgres", "BROADCASTER_WITH_POSTGRES"},   {"postgresql", "BROADCASTER_WITH_POSTGRES"},
    {"kafka", "BROADCASTER_WITH_KAFKA"},         {"nats", "BROADCASTER_WITH_NATS"},
};

class registry {
  public:
    static registry& instance() {
        static registry r;
        return r;
    }

    void add(std::string scheme, backend_factory factory) {
        std::lock_guard lock(mutex_);
        factories_[std::move(scheme)] = std::move(factory);
    }

    backend_factory find(const std::string& scheme) const {
        std::lock_guard lock(mutex_);
        const auto it = factories_.find(scheme);
        return it == factories_.end() ? backend_factory() : it->second;
    }

  private:
    // Built-in backends are registered here, explicitly: static self-registration
    // would be dropped by the linker from a static library.
    registry() {
        factories_["memory"] = detail::make_memory_backend;
#ifdef BROADCASTER_WITH_REDIS
        factories_["redis"] = detail::make_redis_backend;
        factories_["rediss"] = detail::make_redis_backend;
        factories_["redis-cluster"] = detail::make_redis_cluster_backend;
        factories_["rediss-cluster"] = detail::make_redis_cluster_backend;
        factories_["redis-stream"] = detail::make_redis_stream_backend;
        factories_["rediss-stream"] = detail::make_redis_stream_backend;
#endif
#ifdef BROADCASTER_WITH_POSTGRES
        factories_["postgres"] = detail::make_postgres_backend;
        factories_["postgresql"] = detail::make_postgres_backend;
#endif
#ifdef BROADCASTER_WITH_KAFKA
        factories_["kafka"] = detail::make_kafka_backend;
#endif
#ifdef BROADCASTER_WITH_NATS
        factories_["nats"] = detail::make_nats_backend;
#endif
    }

    mutable std::mutex mutex_;
    std::map<std::string, backend_factory, std::less<>> factories_;
};

std::string lower(std::string s) {
    std::transform(s.begin(), s.end(), s.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return s;
}

}  // namespace

void register_backend(std::string scheme, backend_factory factory) {
    registry::instance().add(lower(std::move(scheme)), std::move(factory));
}

namespace detail {

std::unique_ptr<backend> make_backend(std::string_view url, const broadcast_options& options) {
    const auto redacted = redact_url(url);
    const auto scheme = url_scheme(url);
    if (!scheme) {
        throw boost::system::system_error(
            error::invalid_url,
            "'" + redacted +
                "' is not a valid URL (expected scheme://..., e.g. redis://host:6379)");
    }
    auto factory = registry::instance().find(*scheme);
    if (!factory) {
        for (const auto& known : optional_backends) {
            if (known.scheme == *scheme) {
                throw boost::system::system_error(error::backend_not_built,
                                                  "'" + redacted + "': the " + *scheme +
                                                      " backend is not part of this build (" +
                                                      std::string(known.option) + ")");
            }
        }
        throw boost::system::system_error(
            error::unknown_scheme, "'" + redacted + "': no backend for scheme '" + *scheme + "'");
    }
    return factory(backend_config{std::string(url), redacted, options});
}

}  // namespace detail
}  // namespace broadcaster
