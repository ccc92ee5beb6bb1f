# libbroadcaster calls no OpenSSL function by name: every call goes through the table
# loaded on first use (src/backends/tls/openssl_api.hpp). A name missing from that list
# would make OpenSSL a link dependency of every static app, and in a shared library
# (linked with undefined symbols allowed) an unresolved symbol at its first call.
# Usage: cmake -DNM=nm -DLIBRARY=libbroadcaster.a|.so -P no_openssl_symbols.cmake
set(args --undefined-only)
if(LIBRARY MATCHES "\\.so")
  list(PREPEND args -D)
endif()
execute_process(COMMAND ${NM} ${args} ${LIBRARY} OUTPUT_VARIABLE listing
                RESULT_VARIABLE result ERROR_QUIET)
if(NOT result EQUAL 0)
  message(FATAL_ERROR "${NM} failed on ${LIBRARY}")
endif()
# OpenSSL's C names (a C++ name is mangled, _Z...).
set(prefixes SSL TLS DTLS BIO ERR X509 EVP CRYPTO OPENSSL OSSL SHA1 SHA256 SHA512 PEM ASN1
             BN RSA EC DH OBJ RAND HMAC d2i i2d)
list(JOIN prefixes "|" alternatives)
string(REGEX MATCHALL "[ \t]U[ \t]+(${alternatives})_?[A-Za-z0-9_]*" found "${listing}")
list(TRANSFORM found REPLACE "^[ \t]U[ \t]+" "")
list(REMOVE_DUPLICATES found)
if(found)
  list(JOIN found ", " names)
  message(FATAL_ERROR "${LIBRARY} calls OpenSSL by name (add these to openssl_api.hpp): "
                      "${names}")
endif()
