#pragma once

#include <string>

namespace broadcaster::detail {

// A broker's client library (libpq, librdkafka, nats.c), opened with dlopen when the first
// broadcast of its scheme is made, so a process that never uses that broker does not map
// it nor the libraries it pulls in (TLS, Kerberos, LDAP, compression). Never closed: its
// threads, atexit handlers and returned pointers may outlive any one broadcast.
class client_library {
  public:
    // Opens `soname` (e.g. "libpq.so.5"). `library` names it for the app ("libpq") and
    // `scheme` the backend that needs it. Throws boost::system::system_error with
    // error::backend_unavailable, naming both and dlerror(), when it cannot be loaded.
    client_library(std::string library, std::string scheme, const char* soname);

    // The address of the function `name`; throws like the constructor when the library
    // lacks it (an older version than the build was made against).
    void* function(const char* name) const;

    // Sets `fn` to the function `name`, of the type its header declares.
    template <class Function>
    void resolve(Function*& fn, const char* name) const {
        fn = reinterpret_cast<Function*>(function(name));
    }

  private:
    [[noreturn]] void fail(const std::string& what) const;

    std::string library_;
    std::string scheme_;
    std::string soname_;
    void* handle_ = nullptr;
};

}  // namespace broadcaster::detail
