#pragma once

// OpenSSL's functions, reached through pointers filled when the first TLS connection or
// SHA-256 needs them (see client_library.hpp): libbroadcaster does not link OpenSSL, so
// a process that never speaks TLS to Redis nor uses Postgres does not map it (1.7 MiB of
// resident memory at start). The backends reach these through loaded_openssl.hpp.

#include <openssl/err.h>
#include <openssl/sha.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

namespace broadcaster::detail {

// Every OpenSSL function libbroadcaster calls (its own code and Asio's TLS stream), once.
// A call to one missing here fails the link: the library links no OpenSSL.
#define BROADCASTER_OPENSSL_FUNCTIONS(X)      \
    X(BIO_ctrl)                               \
    X(BIO_ctrl_pending)                       \
    X(BIO_free)                               \
    X(BIO_new_bio_pair)                       \
    X(BIO_read)                               \
    X(BIO_write)                              \
    X(CRYPTO_free)                            \
    X(ERR_clear_error)                        \
    X(ERR_get_error)                          \
    X(ERR_lib_error_string)                   \
    X(ERR_reason_error_string)                \
    X(SHA256)                                 \
    X(SSL_CTX_ctrl)                           \
    X(SSL_CTX_free)                           \
    X(SSL_CTX_get_default_passwd_cb_userdata) \
    X(SSL_CTX_get_ex_data)                    \
    X(SSL_CTX_get_verify_callback)            \
    X(SSL_CTX_load_verify_locations)          \
    X(SSL_CTX_new)                            \
    X(SSL_CTX_set_default_passwd_cb_userdata) \
    X(SSL_CTX_set_default_verify_paths)       \
    X(SSL_CTX_set_ex_data)                    \
    X(SSL_CTX_set_options)                    \
    X(SSL_CTX_set_verify)                     \
    X(SSL_accept)                             \
    X(SSL_connect)                            \
    X(SSL_ctrl)                               \
    X(SSL_free)                               \
    X(SSL_get_error)                          \
    X(SSL_get_ex_data)                        \
    X(SSL_get_ex_data_X509_STORE_CTX_idx)     \
    X(SSL_get_shutdown)                       \
    X(SSL_get_verify_mode)                    \
    X(SSL_new)                                \
    X(SSL_read)                               \
    X(SSL_set_bio)                            \
    X(SSL_set_ex_data)                        \
    X(SSL_set_verify)                         \
    X(SSL_write)                              \
    X(TLS_client_method)                      \
    X(TLS_method)                             \
    X(TLS_server_method)                      \
    X(X509_STORE_CTX_get_current_cert)        \
    X(X509_STORE_CTX_get_error_depth)         \
    X(X509_STORE_CTX_get_ex_data)             \
    X(X509_check_host)                        \
    X(X509_check_ip_asc)

struct openssl_api {
#define BROADCASTER_OPENSSL_MEMBER(name) decltype(&::name) name = nullptr;
    BROADCASTER_OPENSSL_FUNCTIONS(BROADCASTER_OPENSSL_MEMBER)
#undef BROADCASTER_OPENSSL_MEMBER
};

// The program's own OpenSSL when it has one linked (every function above), else opens
// libssl as `soname` (libcrypto comes with it) and resolves them there. Throws
// system_error with error::backend_unavailable naming the library, the backend
// (`scheme`) and the loader's reason.
openssl_api load_openssl(const char* soname, const char* scheme);

// The SONAME of the libssl this build was made against (CMake reads it at configure time).
extern const char* const libssl_soname;

// OpenSSL, loaded on the first call (thread-safe; a failed load is tried again on the
// next call). The backends that need it call it first with their scheme, so that a
// failure names them; every later call finds it loaded.
inline const openssl_api& openssl(const char* scheme = "rediss") {
    static const openssl_api api = load_openssl(libssl_soname, scheme);
    return api;
}

}  // namespace broadcaster::detail
