#pragma once

#include "chat_server.hpp"
#include "join_request.hpp"

#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>

namespace chat {

// Upgrades `stream` to a WebSocket with `request`, which asked for `join`, and runs the
// client until it leaves.
boost::asio::awaitable<void> run_websocket(
    server& srv, boost::beast::tcp_stream stream,
    boost::beast::http::request<boost::beast::http::string_body> request, join_request join);

}  // namespace chat
