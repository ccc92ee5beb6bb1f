#include "join_request.hpp"

#include <boost/url/parse.hpp>

#include <algorithm>

namespace chat {

namespace {

// Whether a comma-separated list of tokens (RFC 7230 §7, optional whitespace around
// the commas) holds `token`.
bool lists(std::string_view list, std::string_view token) {
    while (!list.empty()) {
        const auto comma = list.find(',');
        auto item = list.substr(0, comma);
        list = comma == std::string_view::npos ? std::string_view() : list.substr(comma + 1);
        while (!item.empty() && (item.front() == ' ' || item.front() == '\t')) {
            item.remove_prefix(1);
        }
        while (!item.empty() && (item.back() == ' ' || item.back() == '\t')) {
            item.remove_suffix(1);
        }
        if (item == token) {
            return true;
        }
    }
    return false;
}

}  // namespace

std::string_view target_path(std::string_view target) {
    return target.substr(0, target.find('?'));
}

join_request parse_join(std::string_view target, const std::vector<std::string_view>& protocols) {
    join_request join;
    join.json_frames = std::any_of(protocols.begin(), protocols.end(), [](std::string_view list) {
        return lists(list, json_subprotocol);
    });
    const auto url = boost::urls::parse_origin_form(target);
    if (!url) {
        join.problem = "malformed request target";
        return join;
    }
    for (const auto param : url->params()) {
        if (param.key != "since") {
            continue;
        }
        if (join.since) {
            join.problem = "since given twice";
        } else if (param.value.empty()) {
            join.problem = "since is empty";
        } else if (param.value.size() > max_position_bytes) {
            join.problem = "since is longer than " + std::to_string(max_position_bytes) + " bytes";
        } else {
            join.since = param.value;
        }
        if (!join.problem.empty()) {
            return join;
        }
    }
    return join;
}

}  // namespace chat
