#pragma once

// Include this, never OpenSSL's or Asio's TLS headers directly: every OpenSSL function
// named in openssl_api.hpp is renamed here, for the code that follows (ours and Asio's
// TLS stream, included at the end), to a call through the table that openssl() loads.
// OpenSSL's own headers come first (in openssl_api.hpp), so its declarations keep
// their names and are never referenced.

#include "openssl_api.hpp"

#include <type_traits>

namespace broadcaster::detail {

// Calls the loaded function `Member` with its declared parameter types (so `0` still
// converts to a null pointer, as in a direct call).
template <auto Member, class Function = std::remove_pointer_t<std::remove_cvref_t<
                           decltype(std::declval<const openssl_api&>().*Member)>>>
struct openssl_call;

template <auto Member, class Result, class... Args>
struct openssl_call<Member, Result(Args...)> {
    Result operator()(Args... args) const { return (openssl().*Member)(args...); }
};

}  // namespace broadcaster::detail

// At global scope, so that Asio's `::SSL_read(...)` becomes `::broadcaster_openssl::...`.
namespace broadcaster_openssl {
#define BROADCASTER_OPENSSL_CALL(name)                                                          \
    inline constexpr broadcaster::detail::openssl_call<&broadcaster::detail::openssl_api::name> \
        name{};
BROADCASTER_OPENSSL_FUNCTIONS(BROADCASTER_OPENSSL_CALL)
#undef BROADCASTER_OPENSSL_CALL
}  // namespace broadcaster_openssl

#define BIO_ctrl broadcaster_openssl::BIO_ctrl
#define BIO_ctrl_pending broadcaster_openssl::BIO_ctrl_pending
#define BIO_free broadcaster_openssl::BIO_free
#define BIO_new_bio_pair broadcaster_openssl::BIO_new_bio_pair
#define BIO_read broadcaster_openssl::BIO_read
#define BIO_write broadcaster_openssl::BIO_write
#define CRYPTO_free broadcaster_openssl::CRYPTO_free
#define ERR_clear_error broadcaster_openssl::ERR_clear_error
#define ERR_get_error broadcaster_openssl::ERR_get_error
#define ERR_lib_error_string broadcaster_openssl::ERR_lib_error_string
#define ERR_reason_error_string broadcaster_openssl::ERR_reason_error_string
#define SHA256 broadcaster_openssl::SHA256
#define SSL_CTX_ctrl broadcaster_openssl::SSL_CTX_ctrl
#define SSL_CTX_free broadcaster_openssl::SSL_CTX_free
#define SSL_CTX_get_default_passwd_cb_userdata \
    broadcaster_openssl::SSL_CTX_get_default_passwd_cb_userdata
#define SSL_CTX_get_ex_data broadcaster_openssl::SSL_CTX_get_ex_data
#define SSL_CTX_get_verify_callback broadcaster_openssl::SSL_CTX_get_verify_callback
#define SSL_CTX_load_verify_locations broadcaster_openssl::SSL_CTX_load_verify_locations
#define SSL_CTX_new broadcaster_openssl::SSL_CTX_new
#define SSL_CTX_set_default_passwd_cb_userdata \
    broadcaster_openssl::SSL_CTX_set_default_passwd_cb_userdata
#define SSL_CTX_set_default_verify_paths broadcaster_openssl::SSL_CTX_set_default_verify_paths
#define SSL_CTX_set_ex_data broadcaster_openssl::SSL_CTX_set_ex_data
#define SSL_CTX_set_options broadcaster_openssl::SSL_CTX_set_options
#define SSL_CTX_set_verify broadcaster_openssl::SSL_CTX_set_verify
#define SSL_accept broadcaster_openssl::SSL_accept
#define SSL_connect broadcaster_openssl::SSL_connect
#define SSL_ctrl broadcaster_openssl::SSL_ctrl
#define SSL_free broadcaster_openssl::SSL_free
#define SSL_get_error broadcaster_openssl::SSL_get_error
#define SSL_get_ex_data broadcaster_openssl::SSL_get_ex_data
#define SSL_get_ex_data_X509_STORE_CTX_idx broadcaster_openssl::SSL_get_ex_data_X509_STORE_CTX_idx
#define SSL_get_shutdown broadcaster_openssl::SSL_get_shutdown
#define SSL_get_verify_mode broadcaster_openssl::SSL_get_verify_mode
#define SSL_new broadcaster_openssl::SSL_new
#define SSL_read broadcaster_openssl::SSL_read
#define SSL_set_bio broadcaster_openssl::SSL_set_bio
#define SSL_set_ex_data broadcaster_openssl::SSL_set_ex_data
#define SSL_set_verify broadcaster_openssl::SSL_set_verify
#define SSL_write broadcaster_openssl::SSL_write
#define TLS_client_method broadcaster_openssl::TLS_client_method
#define TLS_method broadcaster_openssl::TLS_method
#define TLS_server_method broadcaster_openssl::TLS_server_method
#define X509_STORE_CTX_get_current_cert broadcaster_openssl::X509_STORE_CTX_get_current_cert
#define X509_STORE_CTX_get_error_depth broadcaster_openssl::X509_STORE_CTX_get_error_depth
#define X509_STORE_CTX_get_ex_data broadcaster_openssl::X509_STORE_CTX_get_ex_data
#define X509_check_host broadcaster_openssl::X509_check_host
#define X509_check_ip_asc broadcaster_openssl::X509_check_ip_asc

#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/asio/ssl/stream.hpp>
