#include "cluster_client.hpp"

#include "../../completion.hpp"
#include "../supervised_client.hpp"

#include <broadcaster/error.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <vector>

namespace broadcaster::detail {

namespace asio = boost::asio;
using asio::use_awaitable;
using boost::system::error_code;
using boost::system::system_error;

namespace {

bool is(const redisReply& reply, std::string_view text) {
    return reply.type == REDIS_REPLY_STRING && reply_text(reply) == text;
}

bool starts_with(std::string_view text, std::string_view prefix) {
    return text.substr(0, prefix.size()) == prefix;
}

// Errors that say the cluster changed or is changing: the command is to be sent
// again once the slot map is read again.
bool is_redirect(std::string_view text) {
    return starts_with(text, "MOVED ") || starts_with(text, "ASK ") ||
           starts_with(text, "TRYAGAIN") || starts_with(text, "CLUSTERDOWN");
}

// The node of "-ASK <slot> <host:port>" ("" if malformed); an empty host is `self`'s.
std::string redirect_target(std::string_view text, const std::string& self_address) {
    const auto space = text.rfind(' ');
    if (space == std::string_view::npos) {
        return {};
    }
    std::string target(text.substr(space + 1));
    if (!target.empty() && target.front() == ':') {
        std::string host, port;
        if (split_address(self_address, host, port)) {
            target = join_address(host, target.substr(1));
        }
    }
    return target;
}

error_code thrown_error() {
    try {
        throw;
    } catch (const system_error& e) {
        return e.code() ? e.code() : error_code(error::protocol_error);
    } catch (const std::bad_alloc&) {
        return make_error_code(boost::system::errc::not_enough_memory);
    } catch (...) {
        return error::protocol_error;
    }
}

// Writes all of `data` on `connection`.
asio::awaitable<void> write_all(redis_connection& connection, const std::string& data) {
    co_await asio::async_initiate<decltype(use_awaitable), void(error_code, std::size_t)>(
        [&connection, &data](auto handler) {
            connection.async_write(asio::buffer(data), std::move(handler));
        },
        use_awaitable);
}

}  // namespace

cluster_client::cluster_client(asio::any_io_executor strand, const cluster_config& config,
                               std::shared_ptr<asio::ssl::context> tls,
                               std::weak_ptr<backend_sink> sink)
    : strand_(std::move(strand)),
      config_(config),
      tls_(std::move(tls)),
      sink_(std::move(sink)),
      signal_(strand_),
      backoff_timer_(strand_),
      backoff_(config_.node.reconnect_min, config_.node.reconnect_max),
      deadline_timer_(strand_) {}

// ---- connecting and the topology loop ---------------------------------------------

void cluster_client::connect(completion_handler handler) {
    connect_handler_.swap(handler);
    spawn(strand_, first_connect(shared_from_this()));
}

asio::awaitable<void> cluster_client::first_connect(std::shared_ptr<cluster_client> self) {
    const auto ec = co_await refresh_map();
    if (stopping_) {
        co_return;  // stop() completed the connect
    }
    if (ec) {
        stopping_ = true;
        post_completion(std::move(connect_handler_), strand_, ec);
        co_return;
    }
    connected_ = true;
    post_completion(std::move(connect_handler_), strand_, error_code());
    co_await topology_loop(std::move(self));
}

asio::awaitable<void> cluster_client::topology_loop(std::shared_ptr<cluster_client> self) {
    while (!stopping_) {
        if (!dirty_) {
            signal_.expires_at(asio::steady_timer::time_point::max());
            co_await signal_.async_wait(asio::as_tuple(use_awaitable));
            continue;
        }
        dirty_ = false;
        const auto epoch = moved_epoch_;
        const auto ec = co_await refresh_map();
        if (stopping_) {
            break;
        }
        if (!ec) {
            if (epoch == moved_epoch_) {
                moved_pending_ = false;
            }
            reconcile();  // may set dirty_ again: a slot no master serves
        } else {
            mark_degraded(ec);
            dirty_ = true;
        }
        // While the cluster has not settled (a failover takes the node timeout and an
        // election), read the map again only after a growing pause.
        if (degraded_ || dirty_) {
            backoff_timer_.expires_after(backoff_.next());
            co_await backoff_timer_.async_wait(asio::as_tuple(use_awaitable));
        } else {
            backoff_.reset();
        }
    }
    (void)self;
}

void cluster_client::request_refresh(const std::string& hint) {
    if (!hint.empty()) {
        refresh_hint_ = hint;
    }
    dirty_ = true;
    signal_.cancel();
}

asio::awaitable<error_code> cluster_client::refresh_map() {
    std::vector<std::string> candidates;
    auto add = [&](const std::string& address) {
        if (!address.empty() &&
            std::find(candidates.begin(), candidates.end(), address) == candidates.end()) {
            candidates.push_back(address);
        }
    };
    add(std::exchange(refresh_hint_, {}));
    if (map_) {
        for (const auto& master : map_->masters()) {
            add(master);
        }
    }
    for (const auto& seed : config_.seeds) {
        add(seed);
    }
    error_code last(error::unreachable);
    for (const auto& address : candidates) {
        try {
            co_await read_map(address);
            co_return error_code();
        } catch (...) {
            last = thrown_error();
        }
        if (stopping_) {
            co_return error_code(asio::error::operation_aborted);
        }
        if (last == error::authentication_failed) {
            break;  // the same credentials go to every node
        }
    }
    co_return last;
}

asio::awaitable<void> cluster_client::read_map(std::string address) {
    std::string host, port;
    split_address(address, host, port);
    const auto config = std::make_shared<redis_config>(config_.for_node(host, port));
    const auto connection = std::make_shared<redis_connection>(strand_, *config, tls_.get());
    control_ = connection;
    // The whole exchange is bounded by the connect timeout: a node that accepts the
    // connection and then stalls must not stop the loop for good.
    auto expired = std::make_shared<bool>(false);
    asio::steady_timer deadline(strand_, config_.node.connect_timeout);
    deadline.async_wait([connection, expired](error_code ec) {
        if (!ec) {
            *expired = true;
            connection->close();
        }
    });
    reply_ptr reply;
    try {
        co_await connection->open("control");
        std::string command;
        append_command(command, {"CLUSTER", "SLOTS"});
        co_await write_all(*connection, command);
        reply = co_await connection->read_reply();
    } catch (const system_error& e) {
        connection->close();
        if (*expired) {
            throw system_error(error::timeout,
                               "redis-cluster: reading the slot map took longer "
                               "than the connect timeout");
        }
        throw;
    }
    deadline.cancel();
    connection->close();
    if (control_ == connection) {
        control_.reset();
    }
    if (reply->type == REDIS_REPLY_ERROR) {
        // e.g. "ERR This instance has cluster support disabled"
        throw system_error(error::broker_error,
                           "redis-cluster: " + std::string(reply_text(*reply)));
    }
    auto map = slot_map::from_cluster_slots(*reply, host);
    if (map.masters().empty()) {
        throw system_error(error::broker_error, "redis-cluster: the node serves no slot");
    }
    map_ = std::move(map);
}

// Brings the links and subscriptions in line with a newly read map.
void cluster_client::reconcile() {
    for (auto* links : {&publishers_, &subscribers_}) {
        for (auto it = links->begin(); it != links->end();) {
            const auto l = it->second;
            const bool master = map_->is_master(l->address);
            const bool failed = l->state == link::status::failed;
            if ((failed && (!master || l->subscriber)) ||
                (!master && !l->subscriber && l->entries.empty())) {
                // Its node is gone or a replica now (entries parked, channels displaced),
                // or a subscribe link that failed: its channels are placed again below.
                if (l->retrying) {
                    --retrying_links_;
                }
                close_link(l);
                it = links->erase(it);
                continue;
            }
            if (failed) {
                // Still a master: try again (a failover may not have happened yet).
                l->state = link::status::idle;
                open_link(l);
            }
            ++it;
        }
    }
    // Channels whose slot has another master now: leave the old link, join the new one.
    for (auto& [channel, record] : channels_) {
        const auto* owner = map_->owner(record.slot);
        if (!owner) {
            dirty_ = true;  // no master serves its slot yet: the map is read again
            continue;
        }
        if (record.node == *owner) {
            continue;
        }
        if (!record.node.empty()) {
            const auto it = subscribers_.find(record.node);
            if (it != subscribers_.end()) {
                const auto& old = it->second;
                append_command(old->queued, {"SUNSUBSCRIBE", channel});
                old->sent.push_back({command_kind::unsubscribe, channel, {}});
                flush(old);
                displace(record, old.get());
            } else {
                displace(record, nullptr);
            }
        }
        completion_handler waiter;
        waiter.swap(record.waiter);
        place(channel, record, std::move(waiter));
    }
    for (auto it = subscribers_.begin(); it != subscribers_.end();) {
        const auto l = it->second;
        ++it;
        maybe_close_subscriber(l->address);
    }
    dispatch_parked();
    // Publishes for a slot no master serves wait for a map that has one: read it again
    // (after the loop's pause) rather than wait for a redirect that will not come.
    for (const auto& [seq, entry] : parked_) {
        if (!map_->owner(entry->slot)) {
            dirty_ = true;
            break;
        }
    }
    check_health();
}

// ---- links -------------------------------------------------------------------------

cluster_client::link_ptr& cluster_client::link_to(const std::string& address, bool subscriber) {
    auto& links = subscriber ? subscribers_ : publishers_;
    auto& l = links[address];
    if (!l) {
        std::string host, port;
        split_address(address, host, port);
        l = std::make_shared<link>(address, config_.for_node(host, port), subscriber);
    }
    return l;
}

void cluster_client::open_link(const link_ptr& l) {
    if (l->state != link::status::idle || stopping_) {
        return;
    }
    l->state = link::status::opening;
    l->connection = std::make_shared<redis_connection>(strand_, l->config, tls_.get());
    spawn(strand_, run_link(shared_from_this(), l, ++l->id));
}

// Opens the link, then reads its replies until it fails or is replaced.
asio::awaitable<void> cluster_client::run_link(std::shared_ptr<cluster_client> self, link_ptr l,
                                               std::uint64_t id) {
    const auto connection = l->connection;
    try {
        co_await connection->open(l->subscriber ? "sub" : "pub");
        if (l->id != id || stopping_) {
            co_return;
        }
        l->state = link::status::open;
        if (l->retrying) {
            l->retrying = false;
            --retrying_links_;
        }
        flush(l);
        check_health();
        for (;;) {
            const auto reply = co_await connection->read_reply();
            if (l->id != id) {
                co_return;
            }
            if (l->subscriber) {
                handle_subscriber_reply(l, *reply);
            } else {
                handle_publish_reply(l, *reply);
            }
        }
    } catch (...) {
        const auto ec = thrown_error();
        if (l->id == id && !self->stopping_) {
            link_failed(l, ec);
        }
    }
}

void cluster_client::flush(const link_ptr& l) {
    if (l->state != link::status::open || l->write_active || l->queued.empty()) {
        return;
    }
    // Everything queued goes out in one write: that is the pipelining.
    l->writing.swap(l->queued);
    l->queued.clear();
    l->write_active = true;
    if (!l->subscriber) {
        l->written = l->entries.size();
    }
    l->connection->async_write(
        asio::buffer(l->writing),
        asio::bind_executor(strand_,
                            [self = shared_from_this(), l, id = l->id](error_code ec, std::size_t) {
                                if (l->id != id) {
                                    return;
                                }
                                l->write_active = false;
                                if (ec) {
                                    self->link_failed(l, ec);
                                    return;
                                }
                                self->flush(l);
                            }));
}

void cluster_client::close_link(const link_ptr& l) {
    ++l->id;
    if (l->connection) {
        l->connection->close();
    }
    l->write_active = false;
    l->queued.clear();
    l->writing.clear();
}

void cluster_client::link_failed(const link_ptr& l, error_code ec) {
    close_link(l);
    l->state = link::status::failed;
    if (!l->retrying) {
        l->retrying = true;
        ++retrying_links_;
    }
    if (!l->subscriber) {
        // Their replies will not come: whether the node got them is unknown, and
        // sending them again could deliver them twice.
        for (; l->written > 0 && !l->entries.empty(); --l->written) {
            complete_publish(*l->entries.front(), error::connection_lost);
            l->entries.pop_front();
        }
        l->written = 0;
        // The others never left: they wait for the node's successor.
        while (!l->entries.empty()) {
            auto entry = std::move(l->entries.front());
            l->entries.pop_front();
            entry->asking = false;
            park(std::move(entry));
        }
        if (l->draining) {
            l->draining = false;
            --draining_links_;
        }
        if (!parked_.empty()) {
            mark_degraded(ec);
        }
    } else {
        for (auto& command : l->sent) {
            if (command.kind == command_kind::subscribe && command.handler) {
                // Fails now rather than waiting an unknown time for the failover; the app
                // sees connection_lost and can retry.
                const auto it = channels_.find(command.channel);
                if (it != channels_.end() && it->second.node == l->address &&
                    !it->second.confirmed && !it->second.restoring) {
                    --l->channels;
                    channels_.erase(it);
                }
                complete(command.handler, error::connection_lost);
            } else if (command.handler) {
                complete(command.handler, {});  // an unsubscribe: done
            }
        }
        l->sent.clear();
        bool lost_channels = false;
        for (auto& [channel, record] : channels_) {
            if (record.node == l->address) {
                displace(record, l.get());
                displaced_.insert(channel);
                lost_channels = true;
            }
        }
        if (lost_channels) {
            mark_degraded(ec);
        }
    }
    request_refresh();
    check_health();
}

// ---- publish -----------------------------------------------------------------------

void cluster_client::publish(std::string channel, std::string message, completion_handler handler) {
    if (!connected_ || stopping_) {
        complete(handler, error::not_connected);
        return;
    }
    auto entry = std::make_unique<publish_entry>();
    entry->seq = ++next_seq_;
    entry->slot = hash_slot(channel);
    entry->channel = std::move(channel);
    entry->message = std::move(message);
    entry->deadline = clock::now() + config_.node.publish_timeout;
    entry->handler.swap(handler);
    if (auto slot = asio::get_associated_cancellation_slot(entry->handler); slot.is_connected()) {
        // Posted: the client may be gone by then, or the publish written or completed
        // (cancel_publish then finds nothing to take back).
        slot.assign(
            [weak = weak_from_this(), strand = strand_, seq = entry->seq](asio::cancellation_type) {
                asio::post(strand, [weak, seq] {
                    if (const auto self = weak.lock()) {
                        self->cancel_publish(seq);
                    }
                });
            });
    }
    // Behind an earlier publish of its slot that waits, it waits too: order is kept.
    const auto parked = parked_slots_.find(entry->slot);
    if (held() || (parked != parked_slots_.end() && parked->second > 0) || !try_route(entry)) {
        park(std::move(entry));
    }
    arm_deadline();
}

bool cluster_client::try_route(entry_ptr& entry) {
    if (!map_ || held() || restoring_slots_.count(entry->slot) > 0) {
        return false;
    }
    const std::string* target = &entry->ask_target;
    if (target->empty()) {
        target = map_->owner(entry->slot);
        if (!target) {
            return false;  // no master serves the slot: wait for the map to change
        }
    }
    const auto l = link_to(*target, false);
    if (l->state == link::status::failed) {
        return false;
    }
    open_link(l);
    const auto before = l->queued.size();
    if (!entry->ask_target.empty()) {
        append_command(l->queued, {"ASKING"});
        entry->asking = true;
        entry->ask_target.clear();
    }
    append_command(l->queued, {"SPUBLISH", entry->channel, entry->message});
    entry->bytes = l->queued.size() - before;
    l->entries.push_back(std::move(entry));
    flush(l);
    return true;
}

void cluster_client::park(entry_ptr entry) {
    ++parked_slots_[entry->slot];
    const auto seq = entry->seq;
    parked_.emplace(seq, std::move(entry));
}

// Sends what waited, in publish order; an entry that still cannot go holds back the
// later ones of its slot.
void cluster_client::dispatch_parked() {
    if (held()) {
        return;
    }
    std::unordered_set<std::uint16_t> blocked;
    for (auto it = parked_.begin(); it != parked_.end();) {
        const auto slot = it->second->slot;
        if (blocked.count(slot) == 0 && try_route(it->second)) {
            if (--parked_slots_[slot] == 0) {
                parked_slots_.erase(slot);
            }
            it = parked_.erase(it);
        } else {
            blocked.insert(slot);
            ++it;
        }
    }
    arm_deadline();
}

void cluster_client::handle_publish_reply(const link_ptr& l, const redisReply& reply) {
    if (l->written == 0 || l->entries.empty()) {
        throw system_error(error::protocol_error, "redis-cluster: unexpected reply");
    }
    auto& front = l->entries.front();
    if (front->asking) {
        front->asking = false;  // ASKING's +OK; the SPUBLISH reply follows
        return;
    }
    auto entry = std::move(front);
    l->entries.pop_front();
    --l->written;
    if (reply.type == REDIS_REPLY_ERROR && is_redirect(reply_text(reply))) {
        const auto text = reply_text(reply);
        if (starts_with(text, "ASK ")) {
            entry->ask_target = redirect_target(text, l->address);
        } else {
            moved_pending_ = true;
            ++moved_epoch_;
            request_refresh(starts_with(text, "MOVED ") ? redirect_target(text, l->address) : "");
        }
        // Later publishes of its slot may be in flight to the same node: nothing more
        // goes out until they all came back, so the redirected ones keep their order.
        if (!l->draining) {
            l->draining = true;
            ++draining_links_;
        }
        park(std::move(entry));
    } else {
        complete_publish(*entry, reply.type == REDIS_REPLY_ERROR ? error_code(error::broker_error)
                                                                 : error_code());
    }
    if (l->draining && l->entries.empty()) {
        drained(*l);
    }
}

void cluster_client::cancel_publish(std::uint64_t seq) {
    if (const auto it = parked_.find(seq); it != parked_.end()) {
        auto entry = std::move(it->second);
        parked_.erase(it);
        if (--parked_slots_[entry->slot] == 0) {
            parked_slots_.erase(entry->slot);
        }
        complete_publish(*entry, asio::error::operation_aborted);
        dispatch_parked();  // the later ones of its slot may go now
        check_health();
        return;
    }
    // Queued on a link, not written yet: its commands leave the link's `queued`.
    for (const auto& [address, l] : publishers_) {
        std::size_t offset = 0;
        for (auto it = l->entries.begin() + static_cast<std::ptrdiff_t>(l->written);
             it != l->entries.end(); ++it) {
            if ((*it)->seq == seq) {
                l->queued.erase(offset, (*it)->bytes);
                auto entry = std::move(*it);
                l->entries.erase(it);
                complete_publish(*entry, asio::error::operation_aborted);
                if (l->draining && l->entries.empty()) {
                    drained(*l);
                }
                return;
            }
            offset += (*it)->bytes;
        }
    }
}

void cluster_client::drained(link& l) {
    l.draining = false;
    --draining_links_;
    dispatch_parked();
    check_health();
}

// ---- subscribe ---------------------------------------------------------------------

void cluster_client::subscribe(std::string channel, completion_handler handler) {
    if (!connected_ || stopping_) {
        complete(handler, error::not_connected);
        return;
    }
    // Never assigned as a whole: a completion handler must not be move-assigned.
    auto& record = channels_[channel];
    record.slot = hash_slot(channel);
    record.deadline = clock::now() + config_.node.connect_timeout;
    place(channel, record, std::move(handler));
}

void cluster_client::place(const std::string& channel, channel_record& record,
                           completion_handler handler) {
    const std::string* owner = map_ ? map_->owner(record.slot) : nullptr;
    const link_ptr* l = owner ? &link_to(*owner, true) : nullptr;
    if (!l || (*l)->state == link::status::failed) {
        // Placed when the map or the link is back (reconcile), or failed at its deadline.
        record.node.clear();
        record.waiter.swap(handler);
        displaced_.insert(channel);
        if (record.waiter) {
            arm_deadline();
        }
        request_refresh();
        return;
    }
    open_link(*l);
    append_command((*l)->queued, {"SSUBSCRIBE", channel});
    (*l)->sent.push_back({command_kind::subscribe, channel, std::move(handler)});
    record.node = *owner;
    record.confirmed = false;
    ++(*l)->channels;
    displaced_.erase(channel);
    flush(*l);
}

// The channel leaves its link (`from`, if it is still known); a confirmed one is
// restored by reconcile, and its slot's publishes wait until then.
void cluster_client::displace(channel_record& record, link* from) {
    if (from && from->channels > 0) {
        --from->channels;
    }
    if (record.confirmed && !record.restoring) {
        record.restoring = true;
        ++restoring_slots_[record.slot];
    }
    record.node.clear();
    record.confirmed = false;
}

void cluster_client::unsubscribe(std::string channel, completion_handler handler) {
    const auto it = channels_.find(channel);
    if (it == channels_.end()) {
        complete(handler, {});
        return;
    }
    auto& record = it->second;
    if (record.restoring) {
        if (--restoring_slots_[record.slot] == 0) {
            restoring_slots_.erase(record.slot);
        }
    }
    if (record.waiter) {
        complete(record.waiter, asio::error::operation_aborted);
    }
    const auto node = record.node;
    channels_.erase(it);
    displaced_.erase(channel);
    const auto l = subscribers_.find(node);
    if (node.empty() || l == subscribers_.end()) {
        complete(handler, {});
    } else {
        --l->second->channels;
        append_command(l->second->queued, {"SUNSUBSCRIBE", channel});
        l->second->sent.push_back({command_kind::unsubscribe, channel, std::move(handler)});
        flush(l->second);
    }
    dispatch_parked();
    check_health();
}

void cluster_client::handle_subscriber_reply(const link_ptr& l, const redisReply& reply) {
    if (reply.type == REDIS_REPLY_ARRAY && reply.elements == 3 &&
        is(*reply.element[0], "smessage")) {
        // Only from the link the channel is on: after a move, the old node (now maybe
        // a replica of the new one) could send a message a second time.
        const std::string channel(reply_text(*reply.element[1]));
        const auto it = channels_.find(channel);
        if (it != channels_.end() && it->second.node == l->address) {
            if (auto sink = sink_.lock()) {
                sink->deliver(event(channel, std::string(reply_text(*reply.element[2]))));
            }
        }
        return;
    }
    const bool array = reply.type == REDIS_REPLY_ARRAY && reply.elements >= 2 &&
                       reply.element[1]->type == REDIS_REPLY_STRING;
    const bool subscribed = array && is(*reply.element[0], "ssubscribe");
    const bool unsubscribed = array && is(*reply.element[0], "sunsubscribe");
    if (!subscribed && !unsubscribed && reply.type != REDIS_REPLY_ERROR) {
        return;  // e.g. a pong
    }
    const std::string channel = array ? std::string(reply_text(*reply.element[1])) : "";
    if (!l->sent.empty()) {
        const auto& front = l->sent.front();
        const bool answers = reply.type == REDIS_REPLY_ERROR ||
                             (front.channel == channel &&
                              (front.kind == command_kind::subscribe ? subscribed : unsubscribed));
        if (answers) {
            auto command = std::move(l->sent.front());
            l->sent.pop_front();
            confirm(l, std::move(command), reply);
            return;
        }
    }
    if (!unsubscribed) {
        throw system_error(error::protocol_error, "redis-cluster: unexpected subscription reply");
    }
    // Pushed by the node: the channel's slot moved away. Re-subscribed on its new owner.
    const auto it = channels_.find(channel);
    if (it != channels_.end() && it->second.node == l->address && it->second.confirmed) {
        displace(it->second, l.get());
        displaced_.insert(channel);
        mark_degraded(error::connection_lost);
        request_refresh(l->address);
        maybe_close_subscriber(l->address);
    }
}

void cluster_client::confirm(const link_ptr& l, sent_command command, const redisReply& reply) {
    const auto it = channels_.find(command.channel);
    const bool current = it != channels_.end() && it->second.node == l->address;
    if (command.kind == command_kind::unsubscribe) {
        if (command.handler) {
            complete(command.handler, {});
        }
        maybe_close_subscriber(l->address);
        return;
    }
    if (reply.type == REDIS_REPLY_ERROR) {
        const auto text = reply_text(reply);
        if (current && is_redirect(text)) {
            // The map was stale: placed again once it is read again.
            displace(it->second, l.get());
            it->second.waiter.swap(command.handler);
            displaced_.insert(command.channel);
            request_refresh(starts_with(text, "MOVED ") ? redirect_target(text, l->address) : "");
            arm_deadline();
        } else {
            if (current) {
                displace(it->second, l.get());
                if (it->second.restoring) {
                    if (--restoring_slots_[it->second.slot] == 0) {
                        restoring_slots_.erase(it->second.slot);
                    }
                }
                channels_.erase(it);
            }
            if (command.handler) {
                complete(command.handler, error::broker_error);
            }
        }
        maybe_close_subscriber(l->address);
        dispatch_parked();
        check_health();
        return;
    }
    if (current) {
        auto& record = it->second;
        record.confirmed = true;
        if (record.restoring) {
            record.restoring = false;
            if (--restoring_slots_[record.slot] == 0) {
                restoring_slots_.erase(record.slot);
                dispatch_parked();
            }
        }
    }
    if (command.handler) {
        complete(command.handler, {});
    }
    check_health();
}

// A subscribe link with no channel and no command in flight is closed: one subscribe
// connection per shard that has subscribed channels.
void cluster_client::maybe_close_subscriber(const std::string& address) {
    const auto it = subscribers_.find(address);
    if (it == subscribers_.end()) {
        return;
    }
    const auto l = it->second;
    if (l->channels > 0 || !l->sent.empty() || l->state == link::status::opening) {
        return;
    }
    if (l->retrying) {
        --retrying_links_;
    }
    close_link(l);
    subscribers_.erase(it);
    check_health();
}

// ---- deadlines ---------------------------------------------------------------------

void cluster_client::arm_deadline() {
    std::optional<clock::time_point> earliest;
    auto consider = [&](clock::time_point t) {
        if (!earliest || t < *earliest) {
            earliest = t;
        }
    };
    if (!parked_.empty()) {
        consider(parked_.begin()->second->deadline);
    }
    for (const auto& [address, l] : publishers_) {
        if (!l->entries.empty()) {
            consider(l->entries.front()->deadline);
        }
    }
    for (const auto& channel : displaced_) {
        const auto it = channels_.find(channel);
        if (it != channels_.end() && it->second.waiter) {
            consider(it->second.deadline);
        }
    }
    if (!earliest || (armed_at_ && *armed_at_ <= *earliest)) {
        return;
    }
    armed_at_ = earliest;
    deadline_timer_.expires_at(*earliest);
    deadline_timer_.async_wait(
        asio::bind_executor(strand_, [self = shared_from_this()](error_code ec) {
            if (ec || self->stopping_) {
                return;
            }
            self->armed_at_.reset();
            self->on_deadline();
        }));
}

void cluster_client::on_deadline() {
    const auto now = clock::now();
    for (auto it = parked_.begin(); it != parked_.end() && it->second->deadline <= now;) {
        complete_publish(*it->second, error::reconnect_timeout);
        if (--parked_slots_[it->second->slot] == 0) {
            parked_slots_.erase(it->second->slot);
        }
        it = parked_.erase(it);
    }
    std::vector<link_ptr> dead;
    for (const auto& [address, l] : publishers_) {
        if (l->entries.empty() || l->entries.front()->deadline > now) {
            continue;
        }
        if (l->written > 0) {
            dead.push_back(l);  // the node does not answer: treat the link as lost
            continue;
        }
        // Not written yet (the link is still opening): fail those whose time is up.
        while (!l->entries.empty() && l->entries.front()->deadline <= now) {
            l->queued.erase(0, l->entries.front()->bytes);
            complete_publish(*l->entries.front(), error::reconnect_timeout);
            l->entries.pop_front();
        }
        if (l->draining && l->entries.empty()) {
            drained(*l);
        }
    }
    for (const auto& l : dead) {
        link_failed(l, error::timeout);
    }
    for (auto it = displaced_.begin(); it != displaced_.end();) {
        const auto record = channels_.find(*it);
        if (record != channels_.end() && record->second.waiter && record->second.deadline <= now) {
            complete(record->second.waiter, error::connection_lost);
            channels_.erase(record);
            it = displaced_.erase(it);
        } else {
            ++it;
        }
    }
    check_health();
    arm_deadline();
}

// Clears the publish's cancellation slot first, on the strand where the core emits it:
// after this, the slot's handler cannot run.
void cluster_client::complete_publish(publish_entry& entry, error_code ec) {
    if (auto slot = asio::get_associated_cancellation_slot(entry.handler); slot.is_connected()) {
        slot.clear();
    }
    complete(entry.handler, ec);
}

void cluster_client::complete(completion_handler& handler, error_code ec) {
    post_completion(std::move(handler), strand_, ec);
}

// ---- state -------------------------------------------------------------------------

void cluster_client::mark_degraded(error_code ec) {
    if (!degraded_ && connected_ && !stopping_) {
        degraded_ = true;
        report(connection_state::reconnecting, ec);
    }
}

// "connected" once every subscription is back, nothing waits and every link is up.
void cluster_client::check_health() {
    if (!degraded_ || stopping_) {
        return;
    }
    if (restoring_slots_.empty() && parked_.empty() && !held() && retrying_links_ == 0 && !dirty_) {
        degraded_ = false;
        report(connection_state::connected, {});
    }
}

void cluster_client::report(connection_state state, error_code ec) {
    if (auto sink = sink_.lock()) {
        sink->state_changed(state, ec);
    }
}

// ---- stop --------------------------------------------------------------------------

void cluster_client::disconnect(completion_handler handler) {
    stop();
    post_completion(std::move(handler), strand_, error_code());
}

void cluster_client::stop() {
    if (stopping_ && publishers_.empty() && subscribers_.empty() && !connect_handler_) {
        return;
    }
    stopping_ = true;
    connected_ = false;
    signal_.cancel();
    backoff_timer_.cancel();
    deadline_timer_.cancel();
    if (control_) {
        control_->close();
        control_.reset();
    }
    if (connect_handler_) {
        post_completion(std::move(connect_handler_), strand_,
                        error_code(asio::error::operation_aborted));
    }
    for (auto& [seq, entry] : parked_) {
        complete_publish(*entry, asio::error::operation_aborted);
    }
    parked_.clear();
    parked_slots_.clear();
    for (auto& [address, l] : publishers_) {
        close_link(l);
        for (auto& entry : l->entries) {
            complete_publish(*entry, asio::error::operation_aborted);
        }
        l->entries.clear();
    }
    for (auto& [address, l] : subscribers_) {
        close_link(l);
        for (auto& command : l->sent) {
            if (command.handler) {
                complete(command.handler, command.kind == command_kind::subscribe
                                              ? error_code(asio::error::operation_aborted)
                                              : error_code());
            }
        }
        l->sent.clear();
    }
    for (auto& [channel, record] : channels_) {
        if (record.waiter) {
            complete(record.waiter, asio::error::operation_aborted);
        }
    }
    publishers_.clear();
    subscribers_.clear();
    channels_.clear();
    displaced_.clear();
    restoring_slots_.clear();
}

}  // namespace broadcaster::detail
