#include "redis_client.hpp"

#include "../../completion.hpp"

#include <broadcaster/error.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace broadcaster::detail {

namespace asio = boost::asio;
using asio::use_awaitable;
using boost::system::error_code;
using boost::system::system_error;

namespace {

bool is(const redisReply& reply, std::string_view text) {
    return reply.type == REDIS_REPLY_STRING && reply_text(reply) == text;
}

}  // namespace

redis_client::redis_client(asio::any_io_executor strand, const redis_config& config,
                           std::shared_ptr<asio::ssl::context> tls,
                           std::weak_ptr<backend_sink> sink)
    : supervised_client(std::move(strand), config, std::move(sink)),
      config_(config),
      tls_(std::move(tls)),
      publishes_(strand_),
      publish_deadline_(strand_),
      restore_deadline_(strand_) {}

// ---- supervision -------------------------------------------------------------------

void redis_client::connect(completion_handler handler) {
    start_supervision(std::move(handler), shared_from_this());
}

asio::awaitable<void> redis_client::open_connections() {
    publisher_ = std::make_shared<redis_connection>(strand_, config_, tls_.get());
    subscriber_ = std::make_shared<redis_connection>(strand_, config_, tls_.get());
    const auto publisher = publisher_;
    const auto subscriber = subscriber_;
    co_await publisher->open("pub");
    co_await subscriber->open("sub");
}

void redis_client::on_connected() {
    const auto generation = generation_;
    spawn(strand_, read_replies(generation, publisher_, &redis_client::handle_publish_reply));
    spawn(strand_, read_replies(generation, subscriber_, &redis_client::handle_subscriber_reply));

    // Restore every subscription; "connected" is reported once Redis confirmed them.
    // Publishes (those queued during the outage included) wait until then: sent
    // earlier, they would reach Redis before this instance's own SUBSCRIBEs, and its
    // subscribers would miss them.
    subscriber_sent_.clear();
    subscriber_out_.queued.clear();
    subscriber_out_.active = false;
    resubscriptions_pending_ = channels_.size();
    for (const auto& channel : channels_) {
        send_subscriber_command(command_kind::subscribe, channel, true);
    }
    if (resubscriptions_pending_ == 0) {
        subscriptions_restored();
    } else {
        arm_restore_deadline();
    }
}

void redis_client::arm_restore_deadline() {
    restore_deadline_.expires_after(config_.connect_timeout);
    restore_deadline_.async_wait(asio::bind_executor(
        strand_, [self = shared_from_this(), generation = generation_](error_code ec) {
            if (!ec && self->resubscriptions_pending_ > 0) {
                self->connection_lost(generation, error::timeout);
            }
        }));
}

void redis_client::subscriptions_restored() {
    restore_deadline_.cancel();
    flush_publishes();
    if (reconnecting_) {
        reconnecting_ = false;
        report(connection_state::connected, {});
    }
}

void redis_client::connection_lost(std::uint64_t generation, error_code ec) {
    if (!mark_lost(generation, ec)) {
        return;  // an older connection, or the loss is already being handled
    }
    // A subscribe still waiting for its confirmation fails now rather than waiting an
    // unknown time for the reconnect; the app sees connection_lost and can retry.
    for (auto& [channel, waiters] : std::exchange(subscribe_waiters_, {})) {
        channels_.erase(channel);
        for (auto& waiter : waiters) {
            post_completion(std::move(waiter), strand_, error_code(error::connection_lost));
        }
    }
    // An unsubscribe is done: the new connection will not restore the channel.
    for (auto& [channel, waiters] : std::exchange(unsubscribe_waiters_, {})) {
        for (auto& waiter : waiters) {
            post_completion(std::move(waiter), strand_, error_code());
        }
    }
}

void redis_client::close_connections() {
    if (publisher_) {
        publisher_->close();
    }
    if (subscriber_) {
        subscriber_->close();
    }
    publish_out_.active = false;
    subscriber_out_.active = false;
}

void redis_client::on_lost() {
    // Their replies will not come: whether Redis got them is unknown.
    publishes_.complete_in_flight(error::connection_lost);
}

void redis_client::disconnect(completion_handler handler) {
    stop();
    post_completion(std::move(handler), strand_, error_code());
}

void redis_client::stop() {
    if (stopping_ && !ready_ && !publisher_) {
        return;
    }
    stop_supervision();
    close_connections();
    publisher_.reset();
    subscriber_.reset();
    publish_deadline_.cancel();
    restore_deadline_.cancel();
    // The app's own disconnect (or its broadcast's end) cut them short.
    fail_everything(asio::error::operation_aborted);
}

void redis_client::fail_everything(error_code ec) {
    publishes_.complete_all(ec);
    publish_out_.queued.clear();
    for (auto* waiters : {&subscribe_waiters_, &unsubscribe_waiters_}) {
        const bool is_subscribe = waiters == &subscribe_waiters_;
        for (auto& [channel, list] : *waiters) {
            for (auto& waiter : list) {
                post_completion(std::move(waiter), strand_, is_subscribe ? ec : error_code());
            }
        }
        waiters->clear();
    }
    channels_.clear();
    subscriber_sent_.clear();
    subscriber_out_.queued.clear();
}

// ---- publish -----------------------------------------------------------------------

void redis_client::publish(std::string channel, std::string message, completion_handler handler) {
    if (stopping_) {
        post_completion(std::move(handler), strand_, error_code(error::not_connected));
        return;
    }
    const auto before = publish_out_.queued.size();
    append_command(publish_out_.queued, {"PUBLISH", channel, message});
    publishes_.push(publish_out_.queued.size() - before, std::move(handler),
                    clock::now() + config_.publish_timeout, shared_from_this());
    flush_publishes();
    arm_publish_deadline();
}

void redis_client::cancel_publish(std::uint64_t id) {
    std::size_t offset = 0;  // of its command in `publish_out_.queued`
    for (auto it = publishes_.first_waiting(); it != publishes_.end(); ++it) {
        if (it->id == id) {
            publish_out_.queued.erase(offset, it->payload);
            publishes_.complete_waiting(it, asio::error::operation_aborted);
            return;
        }
        offset += it->payload;
    }
}

void redis_client::flush_publishes() {
    if (resubscriptions_pending_ > 0) {
        return;  // held until the subscriptions are back (on_connected)
    }
    if (start_write(publish_out_, publisher_, &redis_client::flush_publishes)) {
        publishes_.mark_sent(publishes_.size() - publishes_.in_flight());
    }
}

bool redis_client::start_write(outbox& out, const std::shared_ptr<redis_connection>& connection,
                               void (redis_client::*then)()) {
    if (!ready_ || out.active || out.queued.empty()) {
        return false;
    }
    // Everything queued goes out in one write: that is the pipelining.
    out.writing.swap(out.queued);
    out.queued.clear();
    out.active = true;
    connection->async_write(
        asio::buffer(out.writing),
        asio::bind_executor(strand_, [self = shared_from_this(), connection, &out, then,
                                      generation = generation_](error_code ec, std::size_t) {
            if (generation != self->generation_) {
                return;
            }
            out.active = false;
            if (ec) {
                self->connection_lost(generation, ec);
                return;
            }
            ((*self).*then)();
        }));
    return true;
}

void redis_client::handle_publish_reply(const redisReply& reply) {
    if (publishes_.in_flight() == 0) {
        throw system_error(error::protocol_error, "redis: unexpected reply");
    }
    publishes_.complete_front(reply.type == REDIS_REPLY_ERROR ? error::broker_error : error_code());
}

asio::awaitable<void> redis_client::read_replies(std::uint64_t generation,
                                                 std::shared_ptr<redis_connection> connection,
                                                 void (redis_client::*handle)(const redisReply&)) {
    const auto self = shared_from_this();
    try {
        for (;;) {
            const auto reply = co_await connection->read_reply();
            if (generation != generation_) {
                co_return;
            }
            ((*this).*handle)(*reply);
        }
    } catch (const system_error& e) {
        connection_lost(generation, e.code());
    } catch (const std::exception&) {
        connection_lost(generation, error::protocol_error);
    }
}

void redis_client::arm_publish_deadline() {
    if (publish_deadline_armed_ || publishes_.empty()) {
        return;
    }
    publish_deadline_armed_ = true;
    publish_deadline_.expires_at(publishes_.front().deadline);
    publish_deadline_.async_wait(
        asio::bind_executor(strand_, [self = shared_from_this()](error_code ec) {
            self->publish_deadline_armed_ = false;
            if (!ec && !self->stopping_) {
                self->on_publish_deadline();
            }
        }));
}

void redis_client::on_publish_deadline() {
    const auto now = clock::now();
    if (publishes_.in_flight() > 0) {
        // Redis has not answered the oldest publish in time: treat the connection as
        // dead; the supervisor reconnects and the publishes in flight fail.
        if (ready_ && publishes_.front().deadline <= now) {
            connection_lost(generation_, error::timeout);
        }
    } else {
        // Nothing was written: waiting for a connection, or for the subscriptions to be
        // restored, that did not come back in time.
        while (!publishes_.empty() && publishes_.front().deadline <= now) {
            publish_out_.queued.erase(0, publishes_.front().payload);
            publishes_.complete_waiting(publishes_.begin(), error::reconnect_timeout);
        }
    }
    arm_publish_deadline();
}

// ---- subscribe ---------------------------------------------------------------------

void redis_client::subscribe(std::string channel, completion_handler handler) {
    if (!ready_) {
        // Stopped by the app, or reconnecting: the app may retry once connected again.
        post_completion(std::move(handler), strand_,
                        error_code(stopping_ ? error::not_connected : error::connection_lost));
        return;
    }
    channels_.insert(channel);
    subscribe_waiters_[channel].push_back(std::move(handler));
    send_subscriber_command(command_kind::subscribe, channel, false);
}

void redis_client::unsubscribe(std::string channel, completion_handler handler) {
    channels_.erase(channel);
    if (!ready_) {
        post_completion(std::move(handler), strand_, error_code());
        return;
    }
    unsubscribe_waiters_[channel].push_back(std::move(handler));
    send_subscriber_command(command_kind::unsubscribe, channel, false);
}

void redis_client::send_subscriber_command(command_kind kind, const std::string& channel,
                                           bool restore) {
    append_command(subscriber_out_.queued,
                   {kind == command_kind::subscribe ? "SUBSCRIBE" : "UNSUBSCRIBE", channel});
    subscriber_sent_.push_back({kind, channel, restore});
    flush_subscriber();
}

void redis_client::flush_subscriber() {
    start_write(subscriber_out_, subscriber_, &redis_client::flush_subscriber);
}

void redis_client::handle_subscriber_reply(const redisReply& reply) {
    if (reply.type == REDIS_REPLY_ARRAY && reply.elements == 3 &&
        is(*reply.element[0], "message")) {
        if (auto sink = sink_.lock()) {
            sink->deliver(event(std::string(reply_text(*reply.element[1])),
                                std::string(reply_text(*reply.element[2]))));
        }
        return;
    }
    const bool confirmation =
        reply.type == REDIS_REPLY_ARRAY && reply.elements >= 2 &&
        (is(*reply.element[0], "subscribe") || is(*reply.element[0], "unsubscribe"));
    if (!confirmation && reply.type != REDIS_REPLY_ERROR) {
        return;  // e.g. a pong
    }
    if (subscriber_sent_.empty()) {
        throw system_error(error::protocol_error, "redis: unexpected subscription reply");
    }
    const auto command = std::move(subscriber_sent_.front());
    subscriber_sent_.pop_front();
    confirm(command, reply.type == REDIS_REPLY_ERROR ? error::broker_error : error_code());
}

void redis_client::confirm(const sent_command& command, error_code ec) {
    if (ec && command.kind == command_kind::subscribe) {
        channels_.erase(command.channel);
        if (const auto sink = sink_.lock(); sink && command.restore) {
            // e.g. -NOPERM after an ACL change: its subscribers must not wait in silence.
            sink->subscription_refused(command.channel);
        }
    }
    // A restore has no waiter. An entry goes as soon as it has none left: the maps
    // hold only channels with a command in flight, however many were ever used.
    if (!command.restore) {
        auto& map =
            command.kind == command_kind::subscribe ? subscribe_waiters_ : unsubscribe_waiters_;
        if (const auto it = map.find(command.channel); it != map.end()) {
            post_completion(std::move(it->second.front()), strand_, ec);
            it->second.pop_front();
            if (it->second.empty()) {
                map.erase(it);
            }
        }
    }
    if (command.restore && resubscriptions_pending_ > 0 && --resubscriptions_pending_ == 0) {
        subscriptions_restored();
    }
}

std::size_t redis_client::channel_entries() const noexcept {
    return channels_.size() + subscribe_waiters_.size() + unsubscribe_waiters_.size() +
           subscriber_sent_.size();
}

}  // namespace broadcaster::detail
