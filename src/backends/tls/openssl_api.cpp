#include "openssl_api.hpp"

#include "../client_library.hpp"

namespace broadcaster::detail {

const char* const libssl_soname = BROADCASTER_LIBSSL_SONAME;

openssl_api load_openssl(const char* soname, const char* scheme) {
    const client_library library("OpenSSL", scheme, soname);
    openssl_api api;
#define BROADCASTER_OPENSSL_RESOLVE(name) library.resolve(api.name, #name);
    BROADCASTER_OPENSSL_FUNCTIONS(BROADCASTER_OPENSSL_RESOLVE)
#undef BROADCASTER_OPENSSL_RESOLVE
    return api;
}

}  // namespace broadcaster::detail
