// OpenSSL, loaded when the first rediss:// (or postgres://) broadcast is made: several
// threads making the first ones at once all get it; and a process whose OpenSSL cannot be
// loaded gets error::backend_unavailable naming OpenSSL and the backend, never the URL's
// password, and can still use redis:// without TLS. The executable must not link OpenSSL.
// The missing-library case runs with BROADCASTER_TEST_OPENSSL_MISSING set and a broken
// libssl first on LD_LIBRARY_PATH (see CMakeLists.txt).

#include "backends/tls/openssl_api.hpp"
#include "test_servers.hpp"
#include "test_support.hpp"

#include <barrier>
#include <cstdlib>
#include <fstream>
#include <thread>

namespace broadcaster::test {
namespace {

bool mapped(const std::string& library) {
    std::ifstream maps("/proc/self/maps");
    for (std::string line; std::getline(maps, line);) {
        if (line.find("/" + library) != std::string::npos) {
            return true;
        }
    }
    return false;
}

bool openssl_missing() {
    return std::getenv("BROADCASTER_TEST_OPENSSL_MISSING") != nullptr;
}

TEST(openssl_first_load, threads_making_the_first_rediss_broadcasts_at_once_all_get_it) {
    if (openssl_missing()) {
        GTEST_SKIP() << "OpenSSL is hidden in this run";
    }
    ASSERT_FALSE(mapped("libssl.so"));
    constexpr int threads = 8;
    std::barrier start(threads);
    std::atomic<int> made{0};
    std::vector<std::thread> makers;
    for (int i = 0; i < threads; ++i) {
        makers.emplace_back([&] {
            asio::io_context io;
            start.arrive_and_wait();
            try {
                broadcast bc(io, "rediss://127.0.0.1:1?tls_verify=false");
                ++made;
            } catch (const std::exception& e) {
                ADD_FAILURE() << e.what();
            }
        });
    }
    for (auto& maker : makers) {
        maker.join();
    }
    EXPECT_EQ(made, threads);
    EXPECT_TRUE(mapped("libssl.so"));
}

TEST(openssl_missing, a_missing_openssl_is_backend_unavailable_naming_it_not_the_url) {
    if (!openssl_missing()) {
        GTEST_SKIP() << "only with a broken libssl on LD_LIBRARY_PATH";
    }
    // The loader read LD_LIBRARY_PATH at start; the redis-server started below must not.
    unsetenv("LD_LIBRARY_PATH");
    asio::io_context io;
    for (int attempt = 0; attempt < 2; ++attempt) {  // a failed load is tried again
        try {
            broadcast bc(io, "rediss://alice:s3cret@127.0.0.1:1/0?tls_verify=false");
            ADD_FAILURE() << "made a rediss:// broadcast without OpenSSL";
        } catch (const boost::system::system_error& e) {
            const std::string what = e.what();
            EXPECT_EQ(e.code(), error::backend_unavailable) << what;
            EXPECT_EQ(e.code(), condition::configuration) << what;
            EXPECT_NE(what.find("OpenSSL"), std::string::npos) << what;
            EXPECT_NE(what.find("rediss://"), std::string::npos) << what;
            EXPECT_EQ(what.find("s3cret"), std::string::npos) << what;
            EXPECT_EQ(what.find("alice"), std::string::npos) << what;
        }
    }
    // Redis without TLS needs no OpenSSL.
    run_async_test([&](asio::io_context& io) -> asio::awaitable<void> {
        broadcast bc(io, redis_test_url());
        co_await bc.async_connect(asio::use_awaitable);
        auto sub = co_await bc.async_subscribe("no-tls", asio::use_awaitable);
        co_await bc.async_publish("no-tls", "plain", asio::use_awaitable);
        EXPECT_EQ((co_await receive(sub)).message(), "plain");
    });
}

TEST(openssl_missing, the_error_names_the_tls_scheme_used) {
    if (!openssl_missing()) {
        GTEST_SKIP() << "only with a broken libssl on LD_LIBRARY_PATH";
    }
    asio::io_context io;
    // The TLS schemes of Redis Cluster and Redis Streams: the error names the one used.
    for (const std::string scheme : {"rediss-cluster", "rediss-stream"}) {
        try {
            broadcast bc(io, scheme + "://alice:s3cret@127.0.0.1:1?tls_verify=false");
            ADD_FAILURE() << "made a " << scheme << ":// broadcast without OpenSSL";
        } catch (const boost::system::system_error& e) {
            const std::string what = e.what();
            EXPECT_EQ(e.code(), error::backend_unavailable) << what;
            EXPECT_NE(what.find(scheme + "://"), std::string::npos) << what;
            EXPECT_EQ(what.find("s3cret"), std::string::npos) << what;
        }
    }
}

TEST(openssl_missing, a_library_lacking_openssls_functions_is_a_clear_error) {
    try {
        detail::load_openssl("libc.so.6", "rediss");
        ADD_FAILURE() << "libc passed for OpenSSL";
    } catch (const boost::system::system_error& e) {
        const std::string what = e.what();
        EXPECT_EQ(e.code(), error::backend_unavailable) << what;
        EXPECT_NE(what.find("rediss:// needs OpenSSL (libc.so.6), which lacks BIO_ctrl"),
                  std::string::npos)
            << what;
    }
    try {
        detail::load_openssl("libbroadcaster-no-such-ssl.so.9", "postgres");
        ADD_FAILURE() << "loaded a library that does not exist";
    } catch (const boost::system::system_error& e) {
        const std::string what = e.what();
        EXPECT_EQ(e.code(), error::backend_unavailable) << what;
        EXPECT_NE(what.find("postgres:// needs OpenSSL (libbroadcaster-no-such-ssl.so.9), which "
                            "cannot be loaded"),
                  std::string::npos)
            << what;
    }
}

}  // namespace
}  // namespace broadcaster::test
