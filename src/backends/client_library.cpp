#include "client_library.hpp"

#include <broadcaster/error.hpp>

#include <dlfcn.h>

namespace broadcaster::detail {

client_library::client_library(std::string library, std::string scheme, const char* soname)
    : library_(std::move(library)), scheme_(std::move(scheme)), soname_(soname) {
    // RTLD_NOW: a library whose own dependencies are missing fails here, with dlerror()
    // naming the missing one, not at its first call. RTLD_LOCAL: its symbols stay its own.
    handle_ = dlopen(soname, RTLD_NOW | RTLD_LOCAL);
    if (!handle_) {
        fail("cannot be loaded");
    }
}

void* client_library::function(const char* name) const {
    dlerror();  // clears an earlier error, so the one below is this lookup's
    void* address = dlsym(handle_, name);
    if (!address) {
        fail(std::string("lacks ") + name +
             " (older than the version this build was made against)");
    }
    return address;
}

void client_library::fail(const std::string& what) const {
    // dlerror() names the file and why; never a URL, so never a password.
    const char* reason = dlerror();
    throw boost::system::system_error(error::backend_unavailable,
                                      scheme_ + ":// needs " + library_ + " (" + soname_ +
                                          "), which " + what + ": " +
                                          (reason ? reason : "no reason given"));
}

}  // namespace broadcaster::detail
