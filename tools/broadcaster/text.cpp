#include "commands.hpp"

#include <broadcaster/error.hpp>

#include <boost/asio/error.hpp>

#include <iostream>

namespace cli {

int status_for(const boost::system::error_code& ec, bool connecting) {
    using broadcaster::error;
    if (ec == error::invalid_url) {
        return invalid_url;
    }
    if (ec == error::unknown_scheme || ec == error::backend_not_built) {
        return unknown_scheme;
    }
    using broadcaster::condition;
    if (connecting || ec == error::authentication_failed) {
        return unreachable;
    }
    if (ec == error::timeout) {
        return timed_out;
    }
    // Unreachable, lost, or not back in time: the broker, not the request.
    if (ec == condition::transient || ec == error::not_connected) {
        return unreachable;
    }
    if (ec == condition::invalid_request || ec == condition::refused_by_broker) {
        return refused;
    }
    return failure;
}

void report(const std::string& what) {
    // One line whatever `what` holds: control characters are escaped.
    std::string line;
    for (const unsigned char c : what) {
        if (c < 0x20 || c == 0x7f) {
            static const char hex[] = "0123456789abcdef";
            line += c == '\n' ? std::string("\\n") : std::string("\\x") + hex[c >> 4] + hex[c & 15];
        } else {
            line += static_cast<char>(c);
        }
    }
    std::cerr << "broadcaster: " << line << std::endl;
}

std::string quoted(std::string_view text, std::size_t limit) {
    const auto whole = text.size();
    if (whole > limit) {
        // Not in the middle of a UTF-8 sequence (at most 3 continuation bytes).
        auto cut = limit;
        while (cut > 0 && limit - cut < 3 &&
               (static_cast<unsigned char>(text[cut]) & 0xc0) == 0x80) {
            --cut;
        }
        text = text.substr(0, cut);
    }
    const bool utf8 = is_valid_utf8(text);
    static const char hex[] = "0123456789abcdef";
    std::string out = "'";
    for (const unsigned char c : text) {
        if (c == '\\' || c == '\'') {
            out += '\\';
            out += static_cast<char>(c);
        } else if (c == '\n') {
            out += "\\n";
        } else if (c == '\t') {
            out += "\\t";
        } else if (c < 0x20 || c == 0x7f || (c >= 0x80 && !utf8)) {
            out += "\\x";
            out += hex[c >> 4];
            out += hex[c & 15];
        } else {
            out += static_cast<char>(c);
        }
    }
    out += "'";
    if (text.size() < whole) {
        out += "... (" + std::to_string(whole) + " bytes)";
    }
    return out;
}

std::string json_string(std::string_view text) {
    std::string out = "\"";
    for (const unsigned char c : text) {
        switch (c) {
            case '"':
                out += "\\\"";
                break;
            case '\\':
                out += "\\\\";
                break;
            case '\n':
                out += "\\n";
                break;
            case '\r':
                out += "\\r";
                break;
            case '\t':
                out += "\\t";
                break;
            default:
                if (c < 0x20) {
                    static const char hex[] = "0123456789abcdef";
                    out += "\\u00";
                    out += hex[c >> 4];
                    out += hex[c & 15];
                } else {
                    out += static_cast<char>(c);
                }
        }
    }
    return out + "\"";
}

std::string base64(std::string_view bytes) {
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string out;
    std::size_t i = 0;
    for (; i + 2 < bytes.size(); i += 3) {
        const unsigned n = static_cast<unsigned char>(bytes[i]) << 16 |
                           static_cast<unsigned char>(bytes[i + 1]) << 8 |
                           static_cast<unsigned char>(bytes[i + 2]);
        out += alphabet[n >> 18];
        out += alphabet[(n >> 12) & 63];
        out += alphabet[(n >> 6) & 63];
        out += alphabet[n & 63];
    }
    if (i < bytes.size()) {
        unsigned n = static_cast<unsigned char>(bytes[i]) << 16;
        if (i + 1 < bytes.size()) {
            n |= static_cast<unsigned char>(bytes[i + 1]) << 8;
        }
        out += alphabet[n >> 18];
        out += alphabet[(n >> 12) & 63];
        out += i + 1 < bytes.size() ? alphabet[(n >> 6) & 63] : '=';
        out += '=';
    }
    return out;
}

}  // namespace cli
