#include "libpq_api.hpp"

#include "../client_library.hpp"

namespace broadcaster::detail {

const char* const libpq_soname = BROADCASTER_LIBPQ_SONAME;

libpq_api load_libpq(const char* soname) {
    const client_library library("libpq", "postgres", soname);
    libpq_api api;
#define BROADCASTER_LIBPQ_RESOLVE(name) library.resolve(api.name, #name);
    BROADCASTER_LIBPQ_FUNCTIONS(BROADCASTER_LIBPQ_RESOLVE)
#undef BROADCASTER_LIBPQ_RESOLVE
    return api;
}

}  // namespace broadcaster::detail
