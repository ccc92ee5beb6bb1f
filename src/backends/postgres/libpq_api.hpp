#pragma once

// libpq's functions, reached through pointers filled when the first postgres:// broadcast
// is made (see client_library.hpp): libbroadcaster does not link libpq, so a process
// that never uses Postgres maps neither it nor its TLS, Kerberos and LDAP libraries.

#include <libpq-fe.h>

namespace broadcaster::detail {

// Every libpq function the backend calls, once.
#define BROADCASTER_LIBPQ_FUNCTIONS(X) \
    X(PQclear)                         \
    X(PQconnectPoll)                   \
    X(PQconnectStart)                  \
    X(PQconninfoFree)                  \
    X(PQconninfoParse)                 \
    X(PQconsumeInput)                  \
    X(PQenterPipelineMode)             \
    X(PQerrorMessage)                  \
    X(PQescapeIdentifier)              \
    X(PQexitPipelineMode)              \
    X(PQfinish)                        \
    X(PQflush)                         \
    X(PQfreemem)                       \
    X(PQgetResult)                     \
    X(PQgetisnull)                     \
    X(PQgetlength)                     \
    X(PQgetvalue)                      \
    X(PQisBusy)                        \
    X(PQnotifies)                      \
    X(PQntuples)                       \
    X(PQpipelineSync)                  \
    X(PQresultErrorMessage)            \
    X(PQresultStatus)                  \
    X(PQsendPrepare)                   \
    X(PQsendQueryParams)               \
    X(PQsendQueryPrepared)             \
    X(PQsetNoticeProcessor)            \
    X(PQsetnonblocking)                \
    X(PQsocket)                        \
    X(PQstatus)

struct libpq_api {
#define BROADCASTER_LIBPQ_MEMBER(name) decltype(&::name) name = nullptr;
    BROADCASTER_LIBPQ_FUNCTIONS(BROADCASTER_LIBPQ_MEMBER)
#undef BROADCASTER_LIBPQ_MEMBER
};

// Opens libpq as `soname` and resolves every function above. Throws system_error with
// error::backend_unavailable naming the library and the loader's reason.
libpq_api load_libpq(const char* soname);

// The SONAME of the libpq this build was made against (CMake reads it from the library
// found at configure time).
extern const char* const libpq_soname;

// The libpq this build was made against, loaded on the first call (thread-safe; a failed
// load is tried again on the next call). make_postgres_backend calls it first, so every
// later call finds it loaded: a check of a flag, no lookup.
inline const libpq_api& libpq() {
    static const libpq_api api = load_libpq(libpq_soname);
    return api;
}

}  // namespace broadcaster::detail
