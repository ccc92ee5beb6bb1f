#pragma once

// Checks on an HTTP request that Beast leaves to the application: the Host field
// (RFC 7230 §5.4), the message framing (§3.3.3), the WebSocket key (RFC 6455 §4.2.1)
// and the Origin (cross-site WebSocket hijacking). Plain strings in, so they are
// testable without a server.

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace chat {

// Whether `key` is the base64 encoding of 16 bytes (24 characters, "==" at the end).
bool is_valid_websocket_key(std::string_view key);

// Whether `value` may be a Host field value: an authority without user information
// (host, optional port), or empty.
bool is_valid_host(std::string_view value);

// Why a request with these Transfer-Encoding values (every field, in order) and
// Content-Length presence cannot be framed reliably; nullopt when it can. A request's
// body length is known only when chunked is the final coding and no Content-Length
// competes with it.
std::optional<std::string> framing_problem(const std::vector<std::string_view>& transfer_encodings,
                                           bool has_content_length);

// An origin as the browser serializes it: scheme "://" host [":" port], lowercased,
// the port always present. Returns nullopt for anything else ("null", paths, ...).
std::optional<std::string> normalize_origin(std::string_view origin);

// Whether a WebSocket upgrade with this Origin may proceed. `allowed` holds normalized
// origins (normalize_origin) or "*". Without "*", an origin is accepted when it is in
// `allowed` or names the host the request was sent to (its host and port equal the
// Host field's, the port defaulting to the origin scheme's).
bool origin_allowed(std::string_view origin, std::string_view host,
                    const std::vector<std::string>& allowed);

}  // namespace chat
