#pragma once

// Looking at and changing the shared test cluster from a test: who serves a slot,
// moving a slot (as `redis-cli --cluster reshard` does), killing a master, waiting for
// the cluster to settle. Every wait polls the cluster's own state under a bound.

#include "backends/redis_cluster/hash_slot.hpp"
#include "redis_cluster.hpp"

#include <signal.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace broadcaster::test {

// One line of CLUSTER NODES.
struct cluster_node {
    std::string id;
    unsigned short port = 0;
    bool master = false;
    bool failed = false;  // "fail" or "fail?" seen by the node asked
    bool connected = false;
    std::vector<std::pair<int, int>> slots;
};

// CLUSTER NODES as `port` sees it; empty if it does not answer.
inline std::vector<cluster_node> cluster_nodes(unsigned short port) {
    std::vector<cluster_node> nodes;
    std::istringstream lines(redis_cli(port, {"cluster", "nodes"}));
    for (std::string line; std::getline(lines, line);) {
        std::istringstream fields(line);
        std::string id, address, flags, master, ping, pong, epoch, link;
        if (!(fields >> id >> address >> flags >> master >> ping >> pong >> epoch >> link)) {
            continue;
        }
        cluster_node node;
        node.id = id;
        const auto colon = address.find(':');
        const auto at = address.find('@');
        node.port =
            static_cast<unsigned short>(std::stoi(address.substr(colon + 1, at - colon - 1)));
        node.master = flags.find("master") != std::string::npos;
        node.failed = flags.find("fail") != std::string::npos;
        node.connected = link == "connected";
        for (std::string range; fields >> range;) {
            if (range.front() == '[') {
                continue;  // a slot being migrated
            }
            const auto dash = range.find('-');
            const int first = std::stoi(range.substr(0, dash));
            const int last = dash == std::string::npos ? first : std::stoi(range.substr(dash + 1));
            node.slots.emplace_back(first, last);
        }
        nodes.push_back(std::move(node));
    }
    return nodes;
}

// The port of the master serving `slot` as `port` sees it.
inline std::optional<unsigned short> slot_owner(unsigned short port, int slot) {
    for (const auto& node : cluster_nodes(port)) {
        if (!node.master || node.failed) {
            continue;
        }
        for (const auto& [first, last] : node.slots) {
            if (first <= slot && slot <= last) {
                return node.port;
            }
        }
    }
    return std::nullopt;
}

// Polls `condition` every 20 ms; throws after `timeout`.
template <typename Condition>
void wait_until(Condition condition, const std::string& what,
                std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
    const auto until = std::chrono::steady_clock::now() + timeout;
    while (!condition()) {
        if (std::chrono::steady_clock::now() > until) {
            throw std::runtime_error("timed out waiting for " + what);
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
}

// Every node of the fixture answers, says cluster_state:ok, knows the others as
// connected and agrees on who serves every slot; three masters.
inline bool cluster_settled(const redis_cluster_servers& cluster) {
    const auto& ports = cluster.ports();
    std::optional<std::vector<std::pair<unsigned short, std::pair<int, int>>>> reference;
    for (const auto port : ports) {
        if (redis_cli(port, {"cluster", "info"}).find("cluster_state:ok") == std::string::npos) {
            return false;
        }
        const auto nodes = cluster_nodes(port);
        std::vector<std::pair<unsigned short, std::pair<int, int>>> view;
        int masters = 0;
        for (const auto& node : nodes) {
            if (node.failed || !node.connected) {
                return false;
            }
            if (node.master && !node.slots.empty()) {
                ++masters;
            }
            for (const auto& range : node.slots) {
                view.emplace_back(node.port, range);
            }
        }
        std::sort(view.begin(), view.end());
        if (nodes.size() != ports.size() || masters != 3 || (reference && *reference != view)) {
            return false;
        }
        reference = std::move(view);
    }
    return true;
}

inline void wait_cluster_settled(const redis_cluster_servers& cluster) {
    wait_until([&] { return cluster_settled(cluster); }, "the cluster to settle",
               std::chrono::seconds(60));
}

// Moves `slot` to the master on `to`, as `redis-cli --cluster reshard` does for each
// slot: IMPORTING on the target, MIGRATING on the source, then NODE on both and the
// other masters (the test channels hold no keys to MIGRATE).
inline void move_slot(const redis_cluster_servers& cluster, int slot, unsigned short to) {
    const auto& ports = cluster.ports();
    const auto from = slot_owner(to, slot);
    if (!from || *from == to) {
        throw std::runtime_error("move_slot: slot " + std::to_string(slot) + " has no other owner");
    }
    const auto id = [](unsigned short port) {
        auto text = redis_cli(port, {"cluster", "myid"});
        while (!text.empty() && text.back() == '\n') {
            text.pop_back();
        }
        return text;
    };
    const auto s = std::to_string(slot);
    const auto to_id = id(to);
    redis_cli(to, {"cluster", "setslot", s, "importing", id(*from)});
    redis_cli(*from, {"cluster", "setslot", s, "migrating", to_id});
    redis_cli(to, {"cluster", "setslot", s, "node", to_id});
    redis_cli(*from, {"cluster", "setslot", s, "node", to_id});
    for (const auto port : ports) {
        if (port != to && port != *from) {
            redis_cli(port, {"cluster", "setslot", s, "node", to_id});
        }
    }
    wait_until(
        [&] {
            for (const auto port : ports) {
                if (slot_owner(port, slot) != to) {
                    return false;
                }
            }
            return true;
        },
        "every node to see slot " + s + " moved");
}

// The process id of the node on `port`.
inline pid_t node_pid(unsigned short port) {
    const auto info = redis_cli(port, {"info", "server"});
    const auto at = info.find("process_id:");
    if (at == std::string::npos) {
        throw std::runtime_error("no process_id from node " + std::to_string(port));
    }
    return static_cast<pid_t>(std::stol(info.substr(at + 11)));
}

// The masters' ports, as the first answering node sees them.
inline std::vector<unsigned short> master_ports(const redis_cluster_servers& cluster) {
    for (const auto port : cluster.ports()) {
        std::vector<unsigned short> masters;
        for (const auto& node : cluster_nodes(port)) {
            if (node.master && !node.failed && !node.slots.empty()) {
                masters.push_back(node.port);
            }
        }
        if (!masters.empty()) {
            return masters;
        }
    }
    throw std::runtime_error("no node of the cluster answers");
}

// The master serving each slot, from one CLUSTER NODES.
inline std::map<int, unsigned short> slot_owners(const std::vector<cluster_node>& nodes) {
    std::map<int, unsigned short> owners;
    for (const auto& node : nodes) {
        if (node.master && !node.failed) {
            for (const auto& [first, last] : node.slots) {
                for (int slot = first; slot <= last; ++slot) {
                    owners[slot] = node.port;
                }
            }
        }
    }
    return owners;
}

// `per_master` channel names for each master, named `prefix`-n.
inline std::map<unsigned short, std::vector<std::string>> channels_on_every_master(
    const redis_cluster_servers& cluster, const std::string& prefix, std::size_t per_master) {
    const auto owners = slot_owners(cluster_nodes(cluster.ports().front()));
    std::map<unsigned short, std::vector<std::string>> by_master;
    for (const auto port : master_ports(cluster)) {
        by_master[port];
    }
    for (int n = 0; by_master.size() == 3; ++n) {
        auto name = prefix + "-" + std::to_string(n);
        auto& list = by_master[owners.at(detail::hash_slot(name))];
        if (list.size() < per_master) {
            list.push_back(std::move(name));
        }
        if (std::all_of(by_master.begin(), by_master.end(),
                        [&](const auto& m) { return m.second.size() == per_master; })) {
            break;
        }
    }
    return by_master;
}

}  // namespace broadcaster::test
