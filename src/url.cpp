#include <broadcaster/error.hpp>
#include <broadcaster/url.hpp>

#include <boost/url/parse.hpp>

#include <algorithm>
#include <cctype>

namespace broadcaster {
namespace {

constexpr std::string_view mask = "***";

bool names_a_secret(std::string_view key) {
    std::string lower(key);
    std::transform(lower.begin(), lower.end(), lower.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return lower.find("password") != std::string::npos || lower == "pass";
}

// Masks the value of every `key=value` pair of `query` whose key names a secret.
std::string redact_query(std::string_view query) {
    std::string out;
    while (!query.empty()) {
        const auto amp = query.find('&');
        const auto pair = query.substr(0, amp);
        const auto eq = pair.find('=');
        if (eq != std::string_view::npos && names_a_secret(pair.substr(0, eq))) {
            out.append(pair.substr(0, eq + 1)).append(mask);
        } else {
            out.append(pair);
        }
        if (amp == std::string_view::npos) {
            break;
        }
        out.push_back('&');
        query.remove_prefix(amp + 1);
    }
    return out;
}

}  // namespace

std::string redact_url(std::string_view url) {
    std::string out;
    const auto fragment = url.find('#');
    const auto before_fragment = url.substr(0, fragment);
    const auto question = before_fragment.find('?');
    auto head = before_fragment.substr(0, question);

    // The authority sits between "//" and the next '/'; its user information ends at
    // the last '@' (an unescaped '@' in a password is malformed but must not leak).
    const auto slashes = head.find("//");
    if (slashes != std::string_view::npos) {
        const auto authority_begin = slashes + 2;
        const auto authority_end = head.find('/', authority_begin);
        const auto authority = head.substr(authority_begin, authority_end - authority_begin);
        const auto at = authority.rfind('@');
        if (at != std::string_view::npos) {
            const auto userinfo = authority.substr(0, at);
            const auto colon = userinfo.find(':');
            if (colon != std::string_view::npos) {
                out.append(head.substr(0, authority_begin + colon + 1)).append(mask);
                head.remove_prefix(authority_begin + at);
            }
        }
    }
    out.append(head);
    if (question != std::string_view::npos) {
        out.push_back('?');
        out.append(redact_query(before_fragment.substr(question + 1)));
    }
    if (fragment != std::string_view::npos) {
        out.append(url.substr(fragment));
    }
    return out;
}

boost::system::result<std::string> url_scheme(std::string_view url) {
    const auto parsed = boost::urls::parse_uri(url);
    if (!parsed) {
        return make_error_code(error::invalid_url);
    }
    std::string scheme(parsed->scheme());
    std::transform(scheme.begin(), scheme.end(), scheme.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return scheme;
}

}  // namespace broadcaster
