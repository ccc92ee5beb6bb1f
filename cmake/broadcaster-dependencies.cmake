# Finds the libraries the backends use, without ever failing by itself: each library found
# becomes an imported target (broadcaster::hiredis, broadcaster::rdkafka, broadcaster::nats,
# or the targets of
# CMake's FindOpenSSL / FindPostgreSQL), each one missing is appended to the list named by
# `missing_var` as "<library> (Debian: <package>)".
#
# Used twice: by the build, which turns a missing library into an error naming the option
# that leaves the backend out, and by the installed package config of a static library,
# which reports it through broadcaster_NOT_FOUND_MESSAGE. A consumer's configure therefore
# never runs a REQUIRED pkg_check_modules in its own scope, and pkg-config is optional there.
# It looks only for the libraries libbroadcaster links (BROADCASTER_LINKED_LIBRARIES): those
# a backend loads when first used (cmake/broadcaster-loaded-library.cmake) are run-time
# dependencies only.

# Makes broadcaster::<name> from pkg-config module `module` when pkg-config knows it (its
# flags as the module gives them), or else from `header` and `library` found on the usual
# paths. `pc_prefix` names pkg-config's own target, PkgConfig::<pc_prefix>.
function(broadcaster_find_library name pc_prefix module header library package missing_var)
  if(TARGET broadcaster::${name})
    return()
  endif()
  find_package(PkgConfig QUIET)
  if(PkgConfig_FOUND)
    pkg_check_modules(${pc_prefix} QUIET IMPORTED_TARGET ${module})
  endif()
  if(TARGET PkgConfig::${pc_prefix})
    add_library(broadcaster::${name} INTERFACE IMPORTED)
    target_link_libraries(broadcaster::${name} INTERFACE PkgConfig::${pc_prefix})
    return()
  endif()
  find_path(BROADCASTER_${name}_INCLUDE_DIR ${header})
  find_library(BROADCASTER_${name}_LIBRARY ${library})
  mark_as_advanced(BROADCASTER_${name}_INCLUDE_DIR BROADCASTER_${name}_LIBRARY)
  if(BROADCASTER_${name}_INCLUDE_DIR AND BROADCASTER_${name}_LIBRARY)
    add_library(broadcaster::${name} INTERFACE IMPORTED)
    target_include_directories(broadcaster::${name} INTERFACE ${BROADCASTER_${name}_INCLUDE_DIR})
    target_link_libraries(broadcaster::${name} INTERFACE ${BROADCASTER_${name}_LIBRARY})
  else()
    set(missing ${${missing_var}})
    list(APPEND missing "${module} (Debian: ${package})")
    set(${missing_var} ${missing} PARENT_SCOPE)
  endif()
endfunction()

# Finds the libraries named after `missing_var` (any of openssl, hiredis, libpq, rdkafka,
# nats). `pc_style` is BUILD (pkg-config targets named as the build's other targets expect
# them) or CONSUMER (names of our own, so a consumer's pkg_check_modules never meets ours).
function(broadcaster_find_backend_dependencies pc_style missing_var)
  set(missing "")
  if(pc_style STREQUAL "BUILD")
    set(hiredis_prefix HIREDIS)
    set(rdkafka_prefix RDKAFKA)
    set(nats_prefix NATS)
  else()
    set(hiredis_prefix broadcaster_hiredis)
    set(rdkafka_prefix broadcaster_rdkafka)
    set(nats_prefix broadcaster_nats)
  endif()
  if("openssl" IN_LIST ARGN)
    # 3.0 or later: the functions loaded on first use (src/backends/tls/openssl_api.hpp)
    # are those Asio calls with OpenSSL 3; an older one needs others.
    find_package(OpenSSL 3.0 QUIET)
    if(NOT OpenSSL_FOUND)
      list(APPEND missing "OpenSSL 3.0 or later (Debian: libssl-dev)")
    endif()
  endif()
  if("hiredis" IN_LIST ARGN)
    broadcaster_find_library(hiredis ${hiredis_prefix} hiredis hiredis/hiredis.h hiredis
                             libhiredis-dev missing)
  endif()
  if("libpq" IN_LIST ARGN)
    find_package(PostgreSQL QUIET)
    if(NOT PostgreSQL_FOUND)
      list(APPEND missing "libpq (Debian: libpq-dev)")
    endif()
  endif()
  if("rdkafka" IN_LIST ARGN)
    broadcaster_find_library(rdkafka ${rdkafka_prefix} rdkafka librdkafka/rdkafka.h rdkafka
                             librdkafka-dev missing)
  endif()
  if("nats" IN_LIST ARGN)
    broadcaster_find_library(nats ${nats_prefix} libnats nats/nats.h nats libnats-dev missing)
  endif()
  set(${missing_var} ${missing} PARENT_SCOPE)
endfunction()
