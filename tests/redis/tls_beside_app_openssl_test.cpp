// An app that links OpenSSL itself and speaks TLS with Asio's stream, in the same
// process as rediss:// broadcasts: both work, whichever copy of Asio's inline TLS
// functions the linker keeps (the app's, calling OpenSSL by name, or the library's,
// calling it through the loaded table). Also the TLS errors the library reports: a
// wrong server name, a CA file that cannot be read, and a server that is not TLS.

#include "test_servers.hpp"
#include "test_support.hpp"
#include "tls_files.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/write.hpp>

#include <cstring>
#include <thread>

namespace broadcaster::test {
namespace {

using asio::use_awaitable;
using boost::system::error_code;

struct tls_redis {
    tls_files tls;
    scratch_dir dir{"broadcaster-redis-tls-app"};
    unsigned short port = free_port();
    std::unique_ptr<server_process> server = start_redis(
        dir, port,
        {"--port", "0", "--tls-port", std::to_string(port), "--tls-cert-file", tls.cert,
         "--tls-key-file", tls.key, "--tls-ca-cert-file", tls.cert, "--tls-auth-clients", "no"});
    std::string url(const std::string& query) const {
        return "rediss://localhost:" + std::to_string(port) + "?" + query;
    }
};

tls_redis& server() {
    static tls_redis redis;
    return redis;
}

// The app's own TLS: its context and stream, verifying the certificate, then PING.
asio::awaitable<std::string> app_ping(asio::io_context& io, unsigned short port,
                                      const std::string& ca) {
    asio::ssl::context context(asio::ssl::context::tls_client);
    context.load_verify_file(ca);
    context.set_verify_mode(asio::ssl::verify_peer);
    asio::ssl::stream<asio::ip::tcp::socket> stream(io, context);
    SSL_set_tlsext_host_name(stream.native_handle(), "localhost");
    stream.set_verify_callback(asio::ssl::host_name_verification("localhost"));
    co_await stream.next_layer().async_connect({asio::ip::make_address("127.0.0.1"), port},
                                               use_awaitable);
    co_await stream.async_handshake(asio::ssl::stream_base::client, use_awaitable);
    const std::string ping = "PING\r\n";
    co_await asio::async_write(stream, asio::buffer(ping), use_awaitable);
    std::string reply;
    co_await asio::async_read_until(stream, asio::dynamic_buffer(reply), "\r\n", use_awaitable);
    co_await stream.async_shutdown(asio::as_tuple(use_awaitable));
    co_return reply;
}

TEST(tls_beside_app_openssl, the_app_and_the_library_both_speak_tls_in_one_process) {
    auto& redis = server();
    run_async_test([&](asio::io_context& io) -> asio::awaitable<void> {
        // The app first, before the library has loaded anything.
        EXPECT_EQ(co_await app_ping(io, redis.port, redis.tls.cert), "+PONG\r\n");
        broadcast bc(io, redis.url("tls_ca_file=" + redis.tls.cert));
        co_await bc.async_connect(use_awaitable);
        auto sub = co_await bc.async_subscribe("app-tls", use_awaitable);
        co_await bc.async_publish("app-tls", "over tls", use_awaitable);
        EXPECT_EQ((co_await receive(sub)).message(), "over tls");
        // And the app again, with the library's TLS connection still up.
        EXPECT_EQ(co_await app_ping(io, redis.port, redis.tls.cert), "+PONG\r\n");
        co_await bc.async_publish("app-tls", "again", use_awaitable);
        EXPECT_EQ((co_await receive(sub)).message(), "again");
    });
}

TEST(tls_beside_app_openssl, a_wrong_server_name_is_refused_as_a_tls_error) {
    auto& redis = server();
    run_async_test([&](asio::io_context& io) -> asio::awaitable<void> {
        broadcast bc(io, redis.url("tls_ca_file=" + redis.tls.cert +
                                   "&tls_server_name=not-localhost.example"));
        const auto [ec] = co_await bc.async_connect(asio::as_tuple(use_awaitable));
        EXPECT_EQ(ec.category(), asio::error::get_ssl_category()) << ec.message();
        EXPECT_STREQ(ec.category().name(), "asio.ssl");
        EXPECT_NE(ec.message().find("certificate verify failed"), std::string::npos)
            << ec.message();
        EXPECT_EQ(ec, condition::configuration) << ec.message();
    });
}

TEST(tls_beside_app_openssl, a_ca_file_that_cannot_be_read_names_the_file_and_the_reason) {
    asio::io_context io;
    try {
        broadcast bc(io, "rediss://user:s3cret@localhost:1?tls_ca_file=/nonexistent/ca.pem");
        ADD_FAILURE() << "accepted a CA file that does not exist";
    } catch (const boost::system::system_error& e) {
        const std::string what = e.what();
        EXPECT_EQ(e.code(), error::invalid_url) << what;
        EXPECT_NE(what.find("/nonexistent/ca.pem"), std::string::npos) << what;
        EXPECT_EQ(what.find("s3cret"), std::string::npos) << what;
        // OpenSSL's reason, read through the loaded table, not Asio's fallback text.
        EXPECT_EQ(what.find("asio.ssl error"), std::string::npos) << what;
        EXPECT_GT(what.size(), std::strlen("cannot load the TLS CA file") + 40) << what;
    }
}

TEST(tls_beside_app_openssl, a_server_that_speaks_no_tls_is_refused_as_a_tls_error) {
    const auto plain = redis_test_url();  // redis://127.0.0.1:PORT
    const auto url = "rediss://" + plain.substr(std::strlen("redis://")) + "?tls_verify=false";
    run_async_test([&](asio::io_context& io) -> asio::awaitable<void> {
        broadcast bc(io, url);
        const auto [ec] = co_await bc.async_connect(asio::as_tuple(use_awaitable));
        EXPECT_TRUE(ec);
        EXPECT_FALSE(ec.message().empty());
        EXPECT_NE(ec.message(), "asio.ssl error") << ec.message();
    });
}

// A TLS server that cuts the connection without close_notify once the handshake is
// done and a command arrives: the stream is truncated.
TEST(tls_beside_app_openssl, a_tls_stream_cut_short_is_transient_and_reconnects) {
    auto& redis = server();
    asio::io_context server_io;
    asio::ssl::context server_tls(asio::ssl::context::tls_server);
    server_tls.use_certificate_chain_file(redis.tls.cert);
    server_tls.use_private_key_file(redis.tls.key, asio::ssl::context::pem);
    asio::ip::tcp::acceptor acceptor(server_io, {asio::ip::make_address("127.0.0.1"), 0});
    const auto port = acceptor.local_endpoint().port();
    std::thread cutter([&] {
        asio::ssl::stream<asio::ip::tcp::socket> stream(server_io, server_tls);
        acceptor.accept(stream.next_layer());
        error_code ec;
        stream.handshake(asio::ssl::stream_base::server, ec);
        char byte;
        stream.read_some(asio::buffer(&byte, 1), ec);
        stream.next_layer().close();  // no close_notify
    });
    run_async_test([&](asio::io_context& io) -> asio::awaitable<void> {
        broadcast bc(
            io, "rediss://localhost:" + std::to_string(port) + "?tls_ca_file=" + redis.tls.cert);
        const auto [ec] = co_await bc.async_connect(asio::as_tuple(use_awaitable));
        EXPECT_TRUE(ec);
        // Asio's stream_truncated (or eof), both transient.
        EXPECT_EQ(ec, condition::transient) << ec.category().name() << ": " << ec.message();
    });
    cutter.join();
}

}  // namespace
}  // namespace broadcaster::test
