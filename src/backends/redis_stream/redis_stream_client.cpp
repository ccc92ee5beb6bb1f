#include "redis_stream_client.hpp"

#include "../../completion.hpp"

#include <broadcaster/error.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>

namespace broadcaster::detail {

namespace asio = boost::asio;
using asio::use_awaitable;
using boost::system::error_code;
using boost::system::system_error;

namespace {

// The RESP encoding of a command (binary-safe; any number of arguments, unlike
// append_command's short fixed list).
template <typename Args>
void append_args(std::string& out, const Args& args) {
    out += '*' + std::to_string(args.size()) + "\r\n";
    for (const auto& arg : args) {
        out += '$' + std::to_string(arg.size()) + "\r\n";
        out += arg;
        out += "\r\n";
    }
}

std::string encode(std::initializer_list<std::string_view> args) {
    std::string out;
    append_args(out, args);
    return out;
}

bool is_array(const redisReply& reply) noexcept {
    return reply.type == REDIS_REPLY_ARRAY;
}

// An ACL refusal (of a key, or of the command itself).
bool is_denied(const redisReply& reply) noexcept {
    return reply.type == REDIS_REPLY_ERROR && reply_text(reply).starts_with("NOPERM");
}

[[noreturn]] void unexpected(std::string_view what) {
    throw system_error(error::protocol_error,
                       "redis-stream: unexpected reply to " + std::string(what));
}

stream_id id_of(const redisReply& entry) {
    if (!is_array(entry) || entry.elements < 1 || entry.element[0]->type != REDIS_REPLY_STRING) {
        unexpected("a stream read");
    }
    const auto id = stream_id::parse(reply_text(*entry.element[0]));
    if (!id) {
        unexpected("a stream read (entry ID)");
    }
    return *id;
}

// The message of an entry: its field "m" (what publish writes), else its first value
// (an entry another program added), else empty.
std::string message_of(const redisReply& entry) {
    if (entry.elements < 2 || !is_array(*entry.element[1])) {
        return {};
    }
    const auto& fields = *entry.element[1];
    for (std::size_t i = 0; i + 1 < fields.elements; i += 2) {
        if (reply_text(*fields.element[i]) == "m") {
            return std::string(reply_text(*fields.element[i + 1]));
        }
    }
    return fields.elements >= 2 ? std::string(reply_text(*fields.element[1])) : std::string();
}

// Entries of an XRANGE/XREVRANGE reply as events, in the reply's order.
std::vector<event> events_of(const std::string& channel, const redisReply& entries) {
    std::vector<event> out;
    if (!is_array(entries)) {
        unexpected("a range");
    }
    for (std::size_t i = 0; i < entries.elements; ++i) {
        const auto& entry = *entries.element[i];
        id_of(entry);  // checks the form
        out.emplace_back(channel, message_of(entry), std::string(reply_text(*entry.element[0])));
    }
    return out;
}

// A field of an XINFO STREAM reply (a flat list of names and values) as an ID.
std::optional<stream_id> info_id(const redisReply& info, std::string_view name) {
    if (!is_array(info)) {
        return std::nullopt;
    }
    for (std::size_t i = 0; i + 1 < info.elements; i += 2) {
        if (reply_text(*info.element[i]) == name &&
            info.element[i + 1]->type == REDIS_REPLY_STRING) {
            return stream_id::parse(reply_text(*info.element[i + 1]));
        }
    }
    return std::nullopt;
}

// Starts a write on a connection for async_initiate (a named type: g++ 12 miscompiles
// a lambda initiation awaited with use_awaitable here).
struct start_write {
    redis_connection* connection;
    template <typename Handler>
    void operator()(Handler&& handler, asio::const_buffer buffer) const {
        connection->async_write(buffer, std::forward<Handler>(handler));
    }
};

// Takes references, which the awaiting caller keeps alive: g++ 12 destroys a by-value
// argument of a coroutine awaited in one expression twice.
// Whether events after `after` (an entry the subscriber saw, or 0-0) are gone for good,
// from an XINFO STREAM reply. Trimming (MAXLEN) removes the oldest entries: if
// `after` is older than the first one left and anything was ever removed, what
// followed it may be gone (reported even when the trim ended exactly at `after`: a
// gap is never assumed away). XDEL shows as max-deleted-entry-id. Needs Redis 7.
bool lost_after(const redisReply& info, stream_id after) {
    const auto first = info_id(info, "recorded-first-entry-id");
    const auto deleted = info_id(info, "max-deleted-entry-id");
    long long added = -1;
    long long length = -1;
    for (std::size_t i = 0; i + 1 < info.elements; i += 2) {
        const auto name = reply_text(*info.element[i]);
        const auto& value = *info.element[i + 1];
        if (value.type == REDIS_REPLY_INTEGER) {
            if (name == "entries-added") {
                added = value.integer;
            } else if (name == "length") {
                length = value.integer;
            }
        }
    }
    const bool trimmed = added > length && length >= 0;
    // `after` before the first entry of a stream never trimmed: the stream was made
    // again since (a Redis restarted without its data, a DEL); what followed `after` in
    // the old one is gone. (0-0 names no entry: nothing before the first one.)
    const bool recreated = !trimmed && after > stream_id{};
    return (deleted && *deleted > after) || ((trimmed || recreated) && first && after < *first);
}

asio::awaitable<void> write_all(redis_connection& connection, const std::string& data) {
    co_await asio::async_initiate<decltype(use_awaitable), void(error_code, std::size_t)>(
        start_write{&connection}, use_awaitable, asio::buffer(data));
}

std::string client_id_command() {
    return encode({"CLIENT", "ID"});
}

// The command of reply `i` to catch_up_command's MULTI { XINFO STREAM; XRANGE }...
std::string catch_up_step(std::size_t i) {
    return i == 0 ? "MULTI" : i % 2 == 1 ? "XINFO STREAM" : "XRANGE";
}

// An XREAD of `streams` streams, in words.
std::string xread_of(std::size_t streams) {
    return streams > 1 ? "XREAD of " + std::to_string(streams) + " streams together" : "XREAD";
}

}  // namespace

redis_stream_client::redis_stream_client(asio::any_io_executor strand,
                                         const redis_stream_config& config,
                                         std::shared_ptr<asio::ssl::context> tls,
                                         std::weak_ptr<backend_sink> sink)
    : supervised_client(std::move(strand), config.redis, std::move(sink)),
      config_(config),
      tls_(std::move(tls)),
      publish_deadline_(strand_),
      idle_(strand_),
      unblock_retry_(strand_) {}

// ---- supervision -------------------------------------------------------------------

void redis_stream_client::connect(completion_handler handler) {
    start_supervision(std::move(handler), shared_from_this());
}

asio::awaitable<void> redis_stream_client::open_connections() {
    commands_ = std::make_shared<redis_connection>(strand_, config_.redis, tls_.get());
    reader_ = std::make_shared<redis_connection>(strand_, config_.redis, tls_.get());
    const auto commands = commands_;
    const auto reader = reader_;
    // XADD and XREAD need the dataset: a Redis still loading it is not ready.
    co_await commands->open("stream", true);
    co_await reader->open("xread", true);
    const auto client_id = client_id_command();
    co_await write_all(*reader, client_id);
    const auto id = co_await reader->read_reply();
    if (id->type != REDIS_REPLY_INTEGER) {
        unexpected("CLIENT ID");
    }
    reader_id_ = id->integer;
}

void redis_stream_client::on_connected() {
    const auto generation = generation_;
    replies_skipped_ = 0;
    xread_blocked_ = false;
    unblock_in_flight_ = false;
    // Every channel resumes where it was, checking that nothing was trimmed meanwhile.
    for (const auto& [channel, state] : streams_) {
        behind_.insert(channel);
    }
    spawn(strand_, read_command_replies(generation, commands_));
    spawn(strand_, read_streams(generation, reader_));
    flush();  // publishes that waited for the connection
    if (reconnecting_) {
        reconnecting_ = false;
        report(connection_state::connected, {});
    }
}

void redis_stream_client::connection_lost(std::uint64_t generation, error_code ec) {
    mark_lost(generation, ec);
}

void redis_stream_client::close_connections() {
    if (commands_) {
        commands_->close();
    }
    if (reader_) {
        reader_->close();
    }
    write_active_ = false;
    xread_blocked_ = false;
    idle_.cancel();
    unblock_retry_.cancel();
}

void redis_stream_client::on_lost() {
    // Replies to what was sent will not come (whether Redis executed it is unknown);
    // publishes not sent yet wait for the next connection.
    std::deque<request> kept;
    std::size_t index = 0;
    for (auto& r : requests_) {
        if (index++ >= in_flight_ && r.kind == request_kind::publish) {
            kept.push_back(std::move(r));
        } else {
            fail_request(r, error::connection_lost);
        }
    }
    requests_.swap(kept);
    in_flight_ = 0;
    replies_skipped_ = 0;
}

void redis_stream_client::disconnect(completion_handler handler) {
    stop();
    post_completion(std::move(handler), strand_, error_code());
}

void redis_stream_client::stop() {
    if (stopping_ && !commands_) {
        return;
    }
    stop_supervision();
    close_connections();
    commands_.reset();
    reader_.reset();
    publish_deadline_.cancel();
    for (auto& r : requests_) {
        fail_request(r, error::not_connected);
    }
    requests_.clear();
    in_flight_ = 0;
    streams_.clear();
    behind_.clear();
}

// ---- requests on the command connection --------------------------------------------

void redis_stream_client::publish(std::string channel, std::string message,
                                  completion_handler handler) {
    if (stopping_) {
        post_completion(std::move(handler), strand_, error_code(error::not_connected));
        return;
    }
    request r(request_kind::publish);
    r.command =
        encode({"XADD", channel, "MAXLEN", "~", std::to_string(config_.maxlen), "*", "m", message});
    r.handler.swap(handler);
    enqueue(std::move(r));
}

void redis_stream_client::subscribe(std::string channel, completion_handler handler) {
    if (!ready_) {
        post_completion(std::move(handler), strand_,
                        error_code(stopping_ ? error::not_connected : error::connection_lost));
        return;
    }
    request r(request_kind::subscribe);
    r.command = subscribe_command(channel);
    r.replies = 6;
    r.channel = std::move(channel);
    r.handler.swap(handler);
    enqueue(std::move(r));
}

void redis_stream_client::unsubscribe(std::string channel, completion_handler handler) {
    // Nothing to tell Redis: the next read leaves the stream out; entries of it still
    // arriving are dropped (deliver_entries).
    streams_.erase(channel);
    behind_.erase(channel);
    post_completion(std::move(handler), strand_, error_code());
}

void redis_stream_client::history(std::string channel, history_query query,
                                  backend::history_handler handler) {
    if (!ready_) {
        post_completion(std::move(handler), strand_,
                        error_code(stopping_ ? error::not_connected : error::connection_lost),
                        std::vector<event>());
        return;
    }
    request r(query.after ? request_kind::history_after : request_kind::history_last);
    r.limit = query.limit;
    if (query.after) {
        r.after = stream_id::parse(*query.after);
        if (!r.after) {
            post_completion(std::move(handler), strand_, error_code(error::invalid_position),
                            std::vector<event>());
            return;
        }
        // Atomic: what was trimmed (XINFO) and what is left (XRANGE) at one instant.
        // With a limit, only the most recent that many are read (newest first).
        const auto range = query.limit > 0
                               ? encode({"XREVRANGE", channel, "+", "(" + r.after->str(), "COUNT",
                                         std::to_string(query.limit)})
                               : encode({"XRANGE", channel, "(" + r.after->str(), "+"});
        r.command =
            encode({"MULTI"}) + encode({"XINFO", "STREAM", channel}) + range + encode({"EXEC"});
        r.replies = 4;
    } else if (query.limit > 0) {
        r.command = encode({"XREVRANGE", channel, "+", "-", "COUNT", std::to_string(query.limit)});
    } else {
        r.command = encode({"XREVRANGE", channel, "+", "-"});
    }
    r.channel = std::move(channel);
    r.history.swap(handler);
    enqueue(std::move(r));
}

void redis_stream_client::enqueue(request r) {
    r.deadline = clock::now() + config_.redis.publish_timeout;
    requests_.push_back(std::move(r));
    flush();
    arm_publish_deadline();
}

void redis_stream_client::flush() {
    if (!ready_ || write_active_ || in_flight_ == requests_.size()) {
        return;
    }
    // Everything waiting goes out in one write: that is the pipelining.
    writing_.clear();
    for (auto i = in_flight_; i < requests_.size(); ++i) {
        writing_ += requests_[i].command;
        std::string().swap(requests_[i].command);
    }
    in_flight_ = requests_.size();
    write_active_ = true;
    commands_->async_write(
        asio::buffer(writing_),
        asio::bind_executor(strand_, [self = shared_from_this(), connection = commands_,
                                      generation = generation_](error_code ec, std::size_t) {
            if (generation != self->generation_) {
                return;
            }
            self->write_active_ = false;
            if (ec) {
                self->connection_lost(generation, ec);
                return;
            }
            self->flush();
        }));
}

asio::awaitable<void> redis_stream_client::read_command_replies(
    std::uint64_t generation, std::shared_ptr<redis_connection> connection) {
    const auto self = shared_from_this();
    try {
        for (;;) {
            const auto reply = co_await connection->read_reply();
            if (generation != generation_) {
                co_return;
            }
            if (in_flight_ == 0) {
                unexpected("nothing");
            }
            if (auto& front = requests_.front(); replies_skipped_ + 1 < front.replies) {
                ++replies_skipped_;  // MULTI's OK, a QUEUED
                front.denied = front.denied || is_denied(*reply);
                continue;
            }
            replies_skipped_ = 0;
            auto r = std::move(requests_.front());
            requests_.pop_front();
            --in_flight_;
            answer(r, *reply);
        }
    } catch (const system_error& e) {
        connection_lost(generation, e.code());
    } catch (const std::exception&) {
        connection_lost(generation, error::protocol_error);
    }
}

void redis_stream_client::answer(request& r, const redisReply& reply) {
    const bool failed = reply.type == REDIS_REPLY_ERROR;
    switch (r.kind) {
        case request_kind::publish:
            post_completion(std::move(r.handler), strand_,
                            failed ? error_code(error::broker_error) : error_code());
            return;
        case request_kind::subscribe: {
            // EXEC's reply; XREVRANGE's is the last.
            const auto* range =
                !failed && is_array(reply) && reply.elements == 4 ? reply.element[3] : nullptr;
            if (r.denied || range == nullptr || !is_array(*range)) {
                // -NOPERM: the ACL refuses something reading the stream needs; or e.g.
                // WRONGTYPE: the key holds something else than a stream.
                post_completion(std::move(r.handler), strand_, error_code(error::broker_error));
                return;
            }
            streams_[r.channel].last =
                range->elements > 0 ? id_of(*range->element[0]) : stream_id{};
            behind_.erase(r.channel);
            ++version_;
            restart_read();
            post_completion(std::move(r.handler), strand_, error_code());
            return;
        }
        case request_kind::history_last: {
            if (failed || !is_array(reply)) {
                post_completion(std::move(r.history), strand_, error_code(error::broker_error),
                                std::vector<event>());
                return;
            }
            auto events = events_of(r.channel, reply);
            std::reverse(events.begin(), events.end());  // oldest first
            post_completion(std::move(r.history), strand_, error_code(), std::move(events));
            return;
        }
        case request_kind::history_after: {
            error_code ec;
            std::vector<event> events;
            if (failed || !is_array(reply) || reply.elements != 2) {
                ec = error::broker_error;
            } else if (reply.element[0]->type == REDIS_REPLY_ERROR) {
                // No such stream: nothing kept. If the position came from it, all after
                // it is lost (e.g. a Redis restarted without persistence).
                ec = *r.after > stream_id{} ? error_code(error::history_gap) : error_code();
            } else {
                const auto& info = *reply.element[0];
                const auto last = info_id(info, "last-generated-id");
                if (last && *r.after > *last) {
                    ec = error::invalid_position;  // later than anything the stream had
                } else if (lost_after(info, *r.after)) {
                    ec = error::history_gap;
                } else {
                    events = events_of(r.channel, *reply.element[1]);
                    if (r.limit > 0) {
                        std::reverse(events.begin(), events.end());  // XREVRANGE: oldest first
                    }
                }
            }
            post_completion(std::move(r.history), strand_, ec, std::move(events));
            return;
        }
        case request_kind::unblock:
            unblock_in_flight_ = false;
            // 0: the read was not blocked yet (still on its way to Redis): try again
            // shortly, as long as the read out there misses a channel.
            if (reply.type == REDIS_REPLY_INTEGER && reply.integer == 0 && xread_blocked_ &&
                reading_version_ != version_) {
                unblock_retry_.expires_after(std::chrono::milliseconds(1));
                unblock_retry_.async_wait(asio::bind_executor(
                    strand_, [self = shared_from_this(), generation = generation_](error_code ec) {
                        if (!ec && generation == self->generation_) {
                            self->send_unblock();
                        }
                    }));
            }
            return;
    }
}

void redis_stream_client::fail_request(request& r, error_code ec) {
    switch (r.kind) {
        case request_kind::publish:
        case request_kind::subscribe:
            post_completion(std::move(r.handler), strand_, ec);
            return;
        case request_kind::history_last:
        case request_kind::history_after:
            post_completion(std::move(r.history), strand_, ec, std::vector<event>());
            return;
        case request_kind::unblock:
            unblock_in_flight_ = false;
            return;
    }
}

void redis_stream_client::arm_publish_deadline() {
    if (publish_deadline_armed_ || requests_.empty()) {
        return;
    }
    publish_deadline_armed_ = true;
    publish_deadline_.expires_at(requests_.front().deadline);
    publish_deadline_.async_wait(
        asio::bind_executor(strand_, [self = shared_from_this()](error_code ec) {
            self->publish_deadline_armed_ = false;
            if (!ec && !self->stopping_) {
                self->on_publish_deadline();
            }
        }));
}

void redis_stream_client::on_publish_deadline() {
    const auto now = clock::now();
    if (in_flight_ > 0) {
        // Redis has not answered in time: the connection is dead to us.
        if (ready_ && requests_.front().deadline <= now) {
            connection_lost(generation_, error::timeout);
        }
    } else {
        // Waiting for a connection that did not come back in time.
        while (!requests_.empty() && requests_.front().deadline <= now) {
            fail_request(requests_.front(), error::reconnect_timeout);
            requests_.pop_front();
        }
    }
    arm_publish_deadline();
}

// ---- reading the streams -----------------------------------------------------------

asio::awaitable<void> redis_stream_client::read_streams(
    std::uint64_t generation, std::shared_ptr<redis_connection> connection) {
    const auto self = shared_from_this();
    try {
        for (;;) {
            if (generation != generation_) {
                co_return;
            }
            if (!behind_.empty()) {
                co_await catch_up(*connection);
                continue;
            }
            if (streams_.empty()) {
                idle_.expires_at(asio::steady_timer::time_point::max());
                co_await idle_.async_wait(asio::as_tuple(use_awaitable));
                continue;
            }
            const auto command = xread_command();
            reading_version_ = version_;
            xread_blocked_ = true;
            co_await write_all(*connection, command);
            const auto reply = co_await connection->read_reply();
            if (generation != generation_) {
                co_return;
            }
            xread_blocked_ = false;
            if (is_denied(*reply)) {
                // An ACL change: reconnecting would meet it again. (The text serves when
                // no stream is refused alone.)
                const auto refused =
                    xread_of(streams_.size()) + " refused: " + std::string(reply_text(*reply));
                co_await refuse_denied(*connection, refused);
                continue;
            }
            if (reply->type == REDIS_REPLY_ERROR) {
                throw system_error(error::broker_error,
                                   "redis-stream: XREAD: " + std::string(reply_text(*reply)));
            }
            if (!is_array(*reply)) {
                continue;  // nil: timed out, or unblocked to take a new channel in
            }
            for (std::size_t i = 0; i < reply->elements; ++i) {
                const auto& stream = *reply->element[i];
                if (!is_array(stream) || stream.elements != 2) {
                    unexpected("XREAD");
                }
                const std::string channel(reply_text(*stream.element[0]));
                // A full batch: more may wait, and trimming may overtake us: read the
                // rest the careful way.
                if (deliver_entries(channel, *stream.element[1]) >= config_.read_count &&
                    streams_.count(channel) > 0) {
                    behind_.insert(channel);
                }
            }
        }
    } catch (const system_error& e) {
        connection_lost(generation, e.code());
    } catch (const std::exception&) {
        connection_lost(generation, error::protocol_error);
    }
}

asio::awaitable<void> redis_stream_client::catch_up(redis_connection& connection) {
    const auto generation = generation_;
    const std::vector<std::string> channels(behind_.begin(), behind_.end());
    const auto command = catch_up_command(channels);
    co_await write_all(connection, command);
    std::string denied;  // the first -NOPERM: which command, and Redis's reply
    std::string refusal;
    for (std::size_t i = 0; i < 1 + 2 * channels.size(); ++i) {
        const auto queued = co_await connection.read_reply();
        if (is_denied(*queued) && denied.empty()) {
            denied = catch_up_step(i) + " refused: " + std::string(reply_text(*queued));
        }
        if (queued->type == REDIS_REPLY_ERROR && refusal.empty()) {
            refusal = reply_text(*queued);
        }
    }
    const auto exec = co_await connection.read_reply();  // EXECABORT after a refusal
    if (generation != generation_) {
        co_return;
    }
    if (!denied.empty()) {
        co_await refuse_denied(connection, denied);
        co_return;
    }
    if (!refusal.empty()) {
        throw system_error(error::broker_error, "redis-stream: MULTI: " + refusal);
    }
    if (!is_array(*exec) || exec->elements != 2 * channels.size()) {
        unexpected("EXEC");
    }
    const auto sink = sink_.lock();
    for (std::size_t i = 0; i < channels.size(); ++i) {
        const auto& channel = channels[i];
        const auto it = streams_.find(channel);
        if (it == streams_.end()) {
            behind_.erase(channel);  // unsubscribed meanwhile
            continue;
        }
        const auto& info = *exec->element[2 * i];
        const auto& range = *exec->element[2 * i + 1];
        // The stream gone (a Redis restarted without persistence, or DEL): what it had
        // after our last entry cannot be known.
        const bool gone = info.type == REDIS_REPLY_ERROR;
        const bool lost = gone ? it->second.last > stream_id{} : lost_after(info, it->second.last);
        if (lost && sink) {
            sink->history_gap(channel);  // before anything that follows the gap
        }
        if (gone) {
            it->second.last = stream_id{};  // reported once: read what comes anew
        }
        const auto read = range.type == REDIS_REPLY_ARRAY ? range.elements : 0;
        deliver_entries(channel, range);
        if (lost && !gone) {
            // Reported once: from now on compare with the first entry left.
            if (const auto after = streams_.find(channel); after != streams_.end()) {
                if (const auto first = info_id(info, "recorded-first-entry-id")) {
                    after->second.last = std::max(after->second.last, *first);
                }
                if (const auto deleted = info_id(info, "max-deleted-entry-id")) {
                    after->second.last = std::max(after->second.last, *deleted);
                }
            }
        }
        if (read < config_.read_count) {
            behind_.erase(channel);
        }
    }
}

asio::awaitable<void> redis_stream_client::refuse_denied(redis_connection& connection,
                                                         const std::string& refused) {
    // The error names no stream: each is read alone, without blocking. What such a read
    // returns is left for the next XREAD, which reads after the same IDs.
    const auto generation = generation_;
    std::vector<std::string> channels;
    for (const auto& [channel, state] : streams_) {
        channels.push_back(channel);
    }
    co_await write_all(connection, probe_command(channels));
    std::vector<std::pair<std::string, std::string>> ended;  // channel, why
    for (const auto& channel : channels) {
        const auto reply = co_await connection.read_reply();
        if (is_denied(*reply)) {
            ended.emplace_back(channel,
                               "XREAD of the stream refused: " + std::string(reply_text(*reply)));
        }
    }
    if (generation != generation_) {
        co_return;
    }
    if (ended.empty()) {
        // A command (MULTI, XINFO) or streams read together (ACL selectors) refused, no
        // stream alone: nothing goes on without it, and a reconnect would meet it again.
        for (const auto& channel : channels) {
            ended.emplace_back(channel, refused);
        }
    }
    for (const auto& [channel, why] : ended) {
        streams_.erase(channel);
        behind_.erase(channel);
    }
    if (const auto sink = sink_.lock()) {
        for (const auto& [channel, why] : ended) {
            sink->subscription_refused(channel, why);
        }
    }
}

std::size_t redis_stream_client::deliver_entries(const std::string& channel,
                                                 const redisReply& entries) {
    if (!is_array(entries)) {
        unexpected("a stream read");
    }
    const auto sink = sink_.lock();
    for (std::size_t i = 0; i < entries.elements; ++i) {
        // Looked up per entry: delivering may make the core unsubscribe.
        const auto it = streams_.find(channel);
        if (it == streams_.end()) {
            break;
        }
        const auto& entry = *entries.element[i];
        const auto id = id_of(entry);
        if (!(it->second.last < id)) {
            continue;  // delivered already (a read that raced a resubscribe)
        }
        it->second.last = id;
        if (sink) {
            sink->deliver(
                event(channel, message_of(entry), std::string(reply_text(*entry.element[0]))));
        }
    }
    return entries.elements;
}

// Built outside the coroutines: g++ 12 mishandles initializer lists inside them.
std::string redis_stream_client::xread_command() const {
    std::vector<std::string> args;
    args.reserve(6 + 2 * streams_.size());
    for (const auto* word : {"XREAD", "COUNT"}) {
        args.emplace_back(word);
    }
    args.push_back(std::to_string(config_.read_count));
    args.emplace_back("BLOCK");
    args.push_back(std::to_string(config_.block.count()));
    args.emplace_back("STREAMS");
    for (const auto& [channel, state] : streams_) {
        args.push_back(channel);
    }
    for (const auto& [channel, state] : streams_) {
        args.push_back(state.last.str());
    }
    std::string command;
    append_args(command, args);
    return command;
}

// What reading `channel` needs, checked in one transaction so that a subscribe fails
// rather than its reads later: the catch-up's XINFO and XRANGE, and XREAD of it together
// with the streams read already (ACL selectors may allow each alone, not together).
// `+ +` and `$` read nothing. Then XREVRANGE: where the stream ends now; everything
// added after it is delivered.
std::string redis_stream_client::subscribe_command(const std::string& channel) const {
    std::vector<std::string> xread{"XREAD", "STREAMS"};
    for (const auto& [name, state] : streams_) {
        if (name != channel) {
            xread.push_back(name);
        }
    }
    xread.push_back(channel);
    xread.insert(xread.end(), xread.size() - 2, "$");
    std::string command = encode({"MULTI"});
    command += encode({"XINFO", "STREAM", channel});
    command += encode({"XRANGE", channel, "+", "+"});
    append_args(command, xread);
    command += encode({"XREVRANGE", channel, "+", "-", "COUNT", "1"});
    command += encode({"EXEC"});
    return command;
}

std::string redis_stream_client::catch_up_command(const std::vector<std::string>& channels) {
    std::string command = encode({"MULTI"});
    for (const auto& channel : channels) {
        command += encode({"XINFO", "STREAM", channel});
        command += encode({"XRANGE", channel, "(" + streams_[channel].last.str(), "+", "COUNT",
                           std::to_string(config_.read_count)});
    }
    command += encode({"EXEC"});
    return command;
}

std::string redis_stream_client::probe_command(const std::vector<std::string>& channels) {
    std::string command;
    for (const auto& channel : channels) {
        command +=
            encode({"XREAD", "COUNT", "1", "STREAMS", channel, streams_[channel].last.str()});
    }
    return command;
}

void redis_stream_client::restart_read() {
    idle_.cancel();
    if (xread_blocked_ && reading_version_ != version_) {
        send_unblock();
    }
}

void redis_stream_client::send_unblock() {
    if (unblock_in_flight_ || !ready_ || !xread_blocked_ || reading_version_ == version_) {
        return;
    }
    unblock_in_flight_ = true;
    request r(request_kind::unblock);
    r.command = encode({"CLIENT", "UNBLOCK", std::to_string(reader_id_)});
    enqueue(std::move(r));
}

}  // namespace broadcaster::detail
