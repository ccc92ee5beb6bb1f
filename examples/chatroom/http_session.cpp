// Plain HTTP: the page, /healthz and /metrics; hands WebSocket upgrades on.

#include "chat_server.hpp"
#include "join_request.hpp"
#include "request_checks.hpp"
#include "websocket_session.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
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
    const auto path = target_path(request.target());
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

// Why the header of `request` is not acceptable before its body is read (framing,
// RFC 7230 §3.3.3, and Host, §5.4); nullopt when it is.
std::optional<std::string> header_problem(const http::request_header<>& request) {
    std::vector<std::string_view> transfer_encodings;
    const auto [first, last] = request.equal_range(http::field::transfer_encoding);
    for (auto field = first; field != last; ++field) {
        transfer_encodings.push_back(field->value());
    }
    if (auto problem =
            framing_problem(transfer_encodings, request.count(http::field::content_length) > 0)) {
        return problem;
    }
    const auto hosts = request.count(http::field::host);
    if (hosts > 1) {
        return "more than one Host";
    }
    if (hosts == 0 && request.version() >= 11) {
        return "HTTP/1.1 without Host";
    }
    if (hosts == 1 && !is_valid_host(request[http::field::host])) {
        return "invalid Host";
    }
    return std::nullopt;
}

// Why a WebSocket upgrade cannot proceed (RFC 6455 §4.2.1): nullopt when it can.
// is_upgrade() has checked the method, Connection and Upgrade; the version of the
// WebSocket protocol is checked apart (it has its own answer, 426).
std::optional<std::string> upgrade_problem(const http::request_header<>& request) {
    if (request.version() != 11) {
        return "a WebSocket upgrade needs HTTP/1.1";
    }
    if (request.count(http::field::sec_websocket_version) == 0) {
        return "no Sec-WebSocket-Version";
    }
    if (request.count(http::field::sec_websocket_key) != 1 ||
        !is_valid_websocket_key(request[http::field::sec_websocket_key])) {
        return "Sec-WebSocket-Key must be the base64 of 16 bytes";
    }
    return std::nullopt;
}

// Every Sec-WebSocket-Protocol field of `request`, in order.
std::vector<std::string_view> protocol_fields(const http::request_header<>& request) {
    std::vector<std::string_view> fields;
    const auto [first, last] = request.equal_range(http::field::sec_websocket_protocol);
    for (auto field = first; field != last; ++field) {
        fields.push_back(field->value());
    }
    return fields;
}

// Cross-site WebSocket hijacking: a page elsewhere must not join the room with its
// visitor's browser. Browsers always send Origin; other clients usually send none.
bool upgrade_origin_allowed(const server& srv, const http::request_header<>& request) {
    const auto origins = request.count(http::field::origin);
    if (origins == 0) {
        return true;
    }
    return origins == 1 && origin_allowed(request[http::field::origin], request[http::field::host],
                                          srv.settings().allowed_origins);
}

// Answers `status` with `text` and closes the connection: after a framing error the
// next request's start is unknown.
asio::awaitable<void> refuse(beast::tcp_stream& stream, http::status status, unsigned version,
                             std::string text) {
    http::response<http::string_body> response(status, version == 10 ? 10 : 11);
    response.set(http::field::server, "broadcaster-chat");
    if (status == http::status::upgrade_required) {
        response.set(http::field::sec_websocket_version, "13");  // the one we speak
    }
    response.set(http::field::content_type, "text/plain");
    response.set(http::field::connection, "close");
    response.body() = std::move(text) + "\n";
    response.prepare_payload();
    co_await http::async_write(stream, response, asio::as_tuple(use_awaitable));
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
            co_await http::async_read_header(stream, buffer, parser, asio::as_tuple(use_awaitable));
        if (ec == http::error::end_of_stream || ec == beast::error::timeout ||
            ec == asio::error::connection_reset || ec == asio::error::eof) {
            break;
        }
        std::string problem;
        if (ec) {
            problem = ec.message();
        } else if (auto header = header_problem(parser.get())) {
            problem = std::move(*header);
        } else if (!parser.is_done()) {
            std::tie(ec, n) =
                co_await http::async_read(stream, buffer, parser, asio::as_tuple(use_awaitable));
            if (ec == beast::error::timeout || ec == asio::error::connection_reset ||
                ec == asio::error::eof) {
                break;
            }
            if (ec) {
                problem = ec.message();
            }
        }
        if (!problem.empty()) {
            srv.stats().bad_requests.fetch_add(1, std::memory_order_relaxed);
            co_await refuse(stream, http::status::bad_request, parser.get().version(),
                            "bad request: " + problem);
            break;
        }
        auto request = parser.release();
        if (beast::websocket::is_upgrade(request) && target_path(request.target()) == "/") {
            auto join = parse_join(request.target(), protocol_fields(request));
            if (auto upgrade = upgrade_problem(request)) {
                join.problem = std::move(*upgrade);
            }
            if (!join.problem.empty()) {
                srv.stats().bad_requests.fetch_add(1, std::memory_order_relaxed);
                co_await refuse(stream, http::status::bad_request, request.version(),
                                "bad request: " + join.problem);
                break;
            }
            if (request[http::field::sec_websocket_version] != "13") {
                co_await refuse(stream, http::status::upgrade_required, request.version(),
                                "WebSocket version 13 only");
                break;
            }
            if (!upgrade_origin_allowed(srv, request)) {
                srv.stats().forbidden_origins.fetch_add(1, std::memory_order_relaxed);
                co_await refuse(stream, http::status::forbidden, request.version(),
                                "forbidden: this server does not accept WebSockets from "
                                "pages of that origin (see --allow-origin)");
                break;
            }
            // The WebSocket runs on its own: this coroutine, its HTTP buffer and parser,
            // and the HTTP stream's timers are freed (an idle client costs less). Bytes
            // read past the request (frames a client sent without waiting for the 101)
            // go with it.
            std::string early_input(static_cast<const char*>(buffer.data().data()), buffer.size());
            start_websocket(srv, stream.release_socket(), std::move(request), std::move(join),
                            std::move(early_input));
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
