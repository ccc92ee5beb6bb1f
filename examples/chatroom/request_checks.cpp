#include "request_checks.hpp"

#include <algorithm>
#include <cctype>

namespace chat {

namespace {

bool is_base64_char(char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '+' || c == '/';
}

std::string lowercase(std::string_view text) {
    std::string out(text);
    std::transform(out.begin(), out.end(), out.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return out;
}

bool iequals(std::string_view a, std::string_view b) {
    return a.size() == b.size() && lowercase(a) == lowercase(b);
}

std::string_view trim(std::string_view text) {
    while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) {
        text.remove_prefix(1);
    }
    while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) {
        text.remove_suffix(1);
    }
    return text;
}

}  // namespace

bool is_valid_websocket_key(std::string_view key) {
    // 16 bytes are 128 bits: 21 full characters, one carrying the last 2 bits (its
    // low 4 bits zero: A, Q, g or w), then two padding characters.
    if (key.size() != 24 || key.substr(22) != "==") {
        return false;
    }
    if (!std::all_of(key.begin(), key.begin() + 22, is_base64_char)) {
        return false;
    }
    const char last = key[21];
    return last == 'A' || last == 'Q' || last == 'g' || last == 'w';
}

bool is_valid_host(std::string_view value) {
    // RFC 3986 authority characters, without '@' (no user information in Host).
    static constexpr std::string_view extra = "-._~!$&'()*+,;=%:[]";
    return std::all_of(value.begin(), value.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) ||
               extra.find(c) != std::string_view::npos;
    });
}

std::optional<std::string> framing_problem(const std::vector<std::string_view>& transfer_encodings,
                                           bool has_content_length) {
    if (transfer_encodings.empty()) {
        return std::nullopt;
    }
    if (has_content_length) {
        return "both Transfer-Encoding and Content-Length";
    }
    std::vector<std::string_view> codings;
    for (auto value : transfer_encodings) {
        while (!value.empty()) {
            const auto comma = value.find(',');
            auto coding = trim(value.substr(0, comma));
            coding = trim(coding.substr(0, coding.find(';')));
            if (!coding.empty()) {
                codings.push_back(coding);
            }
            value = comma == std::string_view::npos ? std::string_view() : value.substr(comma + 1);
        }
    }
    const auto chunked = std::count_if(codings.begin(), codings.end(),
                                       [](std::string_view c) { return iequals(c, "chunked"); });
    if (codings.empty() || !iequals(codings.back(), "chunked") || chunked != 1) {
        return "Transfer-Encoding must end with chunked (once)";
    }
    return std::nullopt;
}

std::optional<std::string> normalize_origin(std::string_view origin) {
    const auto separator = origin.find("://");
    if (separator == std::string_view::npos) {
        return std::nullopt;
    }
    const auto scheme = lowercase(origin.substr(0, separator));
    std::string port;
    if (scheme == "http") {
        port = "80";
    } else if (scheme == "https") {
        port = "443";
    } else {
        return std::nullopt;
    }
    auto authority = origin.substr(separator + 3);
    if (!authority.empty() && authority.back() == '/') {
        authority.remove_suffix(1);  // typed by hand: "https://example.com/"
    }
    if (authority.empty() || authority.find_first_of("/?#@") != std::string_view::npos ||
        !is_valid_host(authority)) {
        return std::nullopt;
    }
    std::string_view host = authority;
    std::string_view port_text;
    if (authority.front() == '[') {  // IPv6 literal
        const auto close = authority.find(']');
        if (close == std::string_view::npos) {
            return std::nullopt;
        }
        host = authority.substr(0, close + 1);
        const auto rest = authority.substr(close + 1);
        if (!rest.empty()) {
            if (rest.front() != ':') {
                return std::nullopt;
            }
            port_text = rest.substr(1);
            if (port_text.empty()) {
                return std::nullopt;
            }
        }
    } else if (const auto colon = authority.rfind(':'); colon != std::string_view::npos) {
        host = authority.substr(0, colon);
        port_text = authority.substr(colon + 1);
        if (port_text.empty()) {
            return std::nullopt;
        }
    }
    const bool ipv6 = authority.front() == '[';
    if (host.empty() || (!ipv6 && host.find_first_of("[]") != std::string_view::npos)) {
        return std::nullopt;
    }
    if (!port_text.empty()) {
        if (port_text.size() > 5 || !std::all_of(port_text.begin(), port_text.end(), [](char c) {
                return std::isdigit(static_cast<unsigned char>(c));
            })) {
            return std::nullopt;
        }
        const auto number = std::stoul(std::string(port_text));
        if (number == 0 || number > 65535) {
            return std::nullopt;
        }
        port = std::to_string(number);
    }
    return scheme + "://" + lowercase(host) + ":" + port;
}

bool origin_allowed(std::string_view origin, std::string_view host,
                    const std::vector<std::string>& allowed) {
    if (std::find(allowed.begin(), allowed.end(), "*") != allowed.end()) {
        return true;
    }
    const auto normalized = normalize_origin(origin);
    if (!normalized) {
        return false;  // "null" (sandboxed pages, file://) and anything malformed
    }
    if (std::find(allowed.begin(), allowed.end(), *normalized) != allowed.end()) {
        return true;
    }
    // Same origin: the page was served by this host. The Host field has the port only
    // when it is not the scheme's default, so read it with the origin's scheme.
    const auto scheme = normalized->substr(0, normalized->find("://"));
    const auto target = normalize_origin(scheme + "://" + std::string(host));
    return target && *target == *normalized;
}

}  // namespace chat
