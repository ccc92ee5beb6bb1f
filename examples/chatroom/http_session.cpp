// Plain HTTP: the page, /healthz and /metrics; hands WebSocket upgrades on.

#include "chat_server.hpp"
#include "websocket_session.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket/rfc6455.hpp>

namespace chat {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using asio::use_awaitable;

namespace {

http::response<http::string_body> respond(const http::request<http::string_body>& request,
                                          http::status status, std::string_view content_type,
                                          std::string body) {
    http::response<http::string_body> response(status, request.version());
    response.set(http::field::server, "broadcaster-chat");
    response.set(http::field::content_type, content_type);
    response.set(http::field::cache_control, "no-store");
    response.keep_alive(request.keep_alive());
    response.body() = request.method() == http::verb::head ? std::string() : std::move(body);
    response.prepare_payload();
    return response;
}

http::response<http::string_body> route(server& srv,
                                        const http::request<http::string_body>& request) {
    if (request.method() != http::verb::get && request.method() != http::verb::head) {
        auto response = respond(request, http::status::method_not_allowed, "text/plain",
                                "method not allowed\n");
        response.set(http::field::allow, "GET, HEAD");
        return response;
    }
    const auto target = request.target();
    const auto path = target.substr(0, target.find('?'));
    if (path == "/") {
        return respond(request, http::status::ok, "text/html; charset=utf-8",
                       std::string(page_html));
    }
    if (path == "/healthz") {
        bool healthy = false;
        auto body = srv.health_json(healthy);
        return respond(request, healthy ? http::status::ok : http::status::service_unavailable,
                       "application/json", std::move(body));
    }
    if (path == "/metrics") {
        return respond(request, http::status::ok, "text/plain; version=0.0.4", srv.metrics_text());
    }
    return respond(request, http::status::not_found, "text/plain", "not found\n");
}

}  // namespace

asio::awaitable<void> serve_connection(server& srv, asio::ip::tcp::socket socket) {
    beast::tcp_stream stream(std::move(socket));
    beast::flat_buffer buffer;
    for (;;) {
        // A client that sends nothing (or half a request) is dropped after the timeout.
        stream.expires_after(srv.settings().handshake_timeout);
        http::request_parser<http::string_body> parser;
        parser.header_limit(16 * 1024);
        parser.body_limit(16 * 1024);
        auto [ec, n] =
            co_await http::async_read(stream, buffer, parser, asio::as_tuple(use_awaitable));
        if (ec == http::error::end_of_stream || ec == beast::error::timeout ||
            ec == asio::error::connection_reset || ec == asio::error::eof) {
            break;
        }
        if (ec) {
            srv.stats().bad_requests.fetch_add(1, std::memory_order_relaxed);
            http::response<http::string_body> bad(http::status::bad_request, 11);
            bad.set(http::field::content_type, "text/plain");
            bad.set(http::field::connection, "close");
            bad.body() = "bad request: " + ec.message() + "\n";
            bad.prepare_payload();
            co_await http::async_write(stream, bad, asio::as_tuple(use_awaitable));
            break;
        }
        auto request = parser.release();
        if (beast::websocket::is_upgrade(request) && request.target() == "/") {
            co_await run_websocket(srv, std::move(stream), std::move(request));
            co_return;
        }
        auto response = route(srv, request);
        const bool keep_alive = response.keep_alive();
        auto [write_ec, written] =
            co_await http::async_write(stream, response, asio::as_tuple(use_awaitable));
        if (write_ec || !keep_alive || srv.stopping()) {
            break;
        }
    }
    beast::error_code ignored;
    stream.socket().shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
}

}  // namespace chat
