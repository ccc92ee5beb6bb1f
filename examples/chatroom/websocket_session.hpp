#pragma once

#include "chat_server.hpp"
#include "join_request.hpp"

#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>

#include <string>

namespace chat {

// Upgrades `socket` to a WebSocket with `request`, which asked for `join`, and runs the
// client, on the socket's executor, until it leaves. `early_input`: what the client sent
// after the request, already read. Returns at once.
void start_websocket(server& srv, boost::asio::ip::tcp::socket socket,
                     boost::beast::http::request<boost::beast::http::string_body> request,
                     join_request join, std::string early_input);

}  // namespace chat
