#include "nats_api.hpp"

#include "../client_library.hpp"

namespace broadcaster::detail {

const char* const natsc_soname = BROADCASTER_NATS_SONAME;

nats_api load_nats(const char* soname) {
    const client_library library("libnats", "nats", soname);
    nats_api api;
#define BROADCASTER_NATS_RESOLVE(name) library.resolve(api.name, #name);
    BROADCASTER_NATS_FUNCTIONS(BROADCASTER_NATS_RESOLVE)
#undef BROADCASTER_NATS_RESOLVE
    return api;
}

}  // namespace broadcaster::detail
