#include "rdkafka_api.hpp"

#include "../client_library.hpp"

namespace broadcaster::detail {

const char* const rdkafka_soname = BROADCASTER_RDKAFKA_SONAME;

rdkafka_api load_rdkafka(const char* soname) {
    const client_library library("librdkafka", "kafka", soname);
    rdkafka_api api;
#define BROADCASTER_RDKAFKA_RESOLVE(name) library.resolve(api.name, #name);
    BROADCASTER_RDKAFKA_FUNCTIONS(BROADCASTER_RDKAFKA_RESOLVE)
#undef BROADCASTER_RDKAFKA_RESOLVE
    return api;
}

}  // namespace broadcaster::detail
