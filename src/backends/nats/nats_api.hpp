#pragma once

// nats.c's functions, reached through pointers filled when the first nats:// broadcast
// is made (see client_library.hpp): libbroadcaster does not link libnats, so a process
// that never uses NATS maps neither it nor protobuf-c.

#include <nats/nats.h>

namespace broadcaster::detail {

// Every nats.c function the backend calls, once.
#define BROADCASTER_NATS_FUNCTIONS(X)        \
    X(jsConsumerInfo_Destroy)                \
    X(jsCtx_Destroy)                         \
    X(jsFetchRequest_Init)                   \
    X(jsMsgMetaData_Destroy)                 \
    X(jsOptions_Init)                        \
    X(jsRePublish_Init)                      \
    X(jsStreamConfig_Init)                   \
    X(jsStreamInfo_Destroy)                  \
    X(jsSubOptions_Init)                     \
    X(js_AddStream)                          \
    X(js_GetLastMsg)                         \
    X(js_GetMsg)                             \
    X(js_GetStreamInfo)                      \
    X(js_PullSubscribe)                      \
    X(natsConnection_Buffered)               \
    X(natsConnection_Connect)                \
    X(natsConnection_Destroy)                \
    X(natsConnection_Flush)                  \
    X(natsConnection_GetMaxPayload)          \
    X(natsConnection_JetStream)              \
    X(natsConnection_ProcessReadEvent)       \
    X(natsConnection_ProcessWriteEvent)      \
    X(natsConnection_Publish)                \
    X(natsConnection_PublishRequest)         \
    X(natsConnection_Subscribe)              \
    X(natsInbox_Create)                      \
    X(natsInbox_Destroy)                     \
    X(natsMsgHeader_Get)                     \
    X(natsMsgList_Destroy)                   \
    X(natsMsg_Destroy)                       \
    X(natsMsg_GetData)                       \
    X(natsMsg_GetDataLength)                 \
    X(natsMsg_GetMetaData)                   \
    X(natsMsg_GetSequence)                   \
    X(natsMsg_GetSubject)                    \
    X(natsOptions_Create)                    \
    X(natsOptions_Destroy)                   \
    X(natsOptions_LoadCATrustedCertificates) \
    X(natsOptions_SetAllowReconnect)         \
    X(natsOptions_SetClosedCB)               \
    X(natsOptions_SetCustomReconnectDelay)   \
    X(natsOptions_SetErrorHandler)           \
    X(natsOptions_SetEventLoop)              \
    X(natsOptions_SetExpectedHostname)       \
    X(natsOptions_SetMaxPingsOut)            \
    X(natsOptions_SetMaxReconnect)           \
    X(natsOptions_SetName)                   \
    X(natsOptions_SetPingInterval)           \
    X(natsOptions_SetReconnectedCB)          \
    X(natsOptions_SetSecure)                 \
    X(natsOptions_SetSendAsap)               \
    X(natsOptions_SetServers)                \
    X(natsOptions_SetTimeout)                \
    X(natsOptions_SetToken)                  \
    X(natsOptions_SetUserInfo)               \
    X(natsOptions_SkipServerVerification)    \
    X(natsOptions_UseGlobalMessageDelivery)  \
    X(natsStatus_GetText)                    \
    X(natsSubscription_Destroy)              \
    X(natsSubscription_FetchRequest)         \
    X(natsSubscription_GetConsumerInfo)      \
    X(natsSubscription_GetDropped)           \
    X(natsSubscription_GetID)                \
    X(natsSubscription_GetSubject)           \
    X(natsSubscription_SetPendingLimits)     \
    X(natsSubscription_Unsubscribe)

struct nats_api {
#define BROADCASTER_NATS_MEMBER(name) decltype(&::name) name = nullptr;
    BROADCASTER_NATS_FUNCTIONS(BROADCASTER_NATS_MEMBER)
#undef BROADCASTER_NATS_MEMBER
};

// Opens libnats as `soname` and resolves every function above. Throws system_error with
// error::backend_unavailable naming the library and the loader's reason.
nats_api load_nats(const char* soname);

// The SONAME of the libnats this build was made against (CMake reads it from the library
// found at configure time).
extern const char* const natsc_soname;

// The nats.c this build was made against, loaded on the first call (thread-safe; a failed
// load is tried again on the next call). make_nats_backend calls it first, so every later
// call finds it loaded: a check of a flag, no lookup.
inline const nats_api& natsc() {
    static const nats_api api = load_nats(natsc_soname);
    return api;
}

}  // namespace broadcaster::detail
