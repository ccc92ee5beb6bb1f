// A backend's client library that cannot be loaded, or lacks a function, makes a clear
// configuration error naming it, never a crash. (That every backend's library does load
// is what each backend's own tests show.)

#include "backends/client_library.hpp"

#include <broadcaster/error.hpp>

#include <gtest/gtest.h>

#include <string>

namespace broadcaster::test {
namespace {

using detail::client_library;

// The message of the error `make` throws, after checking its code.
template <class Make>
std::string failure_of(Make make) {
    try {
        make();
    } catch (const boost::system::system_error& e) {
        EXPECT_EQ(e.code(), error::backend_unavailable);
        EXPECT_EQ(e.code(), condition::configuration);
        return e.what();
    }
    ADD_FAILURE() << "no error";
    return {};
}

TEST(client_library, a_library_that_is_not_installed_is_a_clear_configuration_error) {
    const auto what = failure_of(
        [] { client_library("libexample", "example", "libbroadcaster-not-installed.so.9"); });
    EXPECT_NE(what.find("example:// needs libexample (libbroadcaster-not-installed.so.9), which "
                        "cannot be loaded: "),
              std::string::npos)
        << what;
    // dlerror()'s reason.
    EXPECT_NE(what.find("cannot open shared object file"), std::string::npos) << what;
}

TEST(client_library, a_library_without_a_function_the_build_calls_is_a_clear_error) {
    const client_library libc("libc", "example", "libc.so.6");
    EXPECT_NE(libc.function("strlen"), nullptr);
    const auto what = failure_of([&] { libc.function("broadcaster_no_such_function"); });
    EXPECT_NE(what.find("example:// needs libc (libc.so.6), which lacks "
                        "broadcaster_no_such_function"),
              std::string::npos)
        << what;
}

}  // namespace
}  // namespace broadcaster::test
