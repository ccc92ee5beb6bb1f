#include "openssl_api.hpp"

#include "../client_library.hpp"

#include <optional>

// Weak references to OpenSSL's functions: null unless the program has OpenSSL linked
// itself (statically or not), in which case the library uses that one. Loading a second
// copy beside it would split a TLS stream between the two: Asio's TLS code is inline,
// and the linker keeps one copy of each function, the app's or the library's.
extern "C" {
#define BROADCASTER_OPENSSL_WEAK(name) __attribute__((weak)) decltype(::name) name;
BROADCASTER_OPENSSL_FUNCTIONS(BROADCASTER_OPENSSL_WEAK)
#undef BROADCASTER_OPENSSL_WEAK
}

namespace broadcaster::detail {

const char* const libssl_soname = BROADCASTER_LIBSSL_SONAME;

namespace {

// The program's own OpenSSL, if it has every function the library calls.
std::optional<openssl_api> linked_openssl() {
    openssl_api api;
    bool linked = true;
#define BROADCASTER_OPENSSL_LINKED(name) \
    api.name = &::name;                  \
    linked = linked && api.name != nullptr;
    BROADCASTER_OPENSSL_FUNCTIONS(BROADCASTER_OPENSSL_LINKED)
#undef BROADCASTER_OPENSSL_LINKED
    if (!linked) {
        return std::nullopt;
    }
    return api;
}

}  // namespace

openssl_api load_openssl(const char* soname, const char* scheme) {
    if (auto api = linked_openssl()) {
        return *api;
    }
    const client_library library("OpenSSL", scheme, soname);
    openssl_api api;
#define BROADCASTER_OPENSSL_RESOLVE(name) library.resolve(api.name, #name);
    BROADCASTER_OPENSSL_FUNCTIONS(BROADCASTER_OPENSSL_RESOLVE)
#undef BROADCASTER_OPENSSL_RESOLVE
    return api;
}

}  // namespace broadcaster::detail
