#include "kafka_client.hpp"

#include "../../completion.hpp"

#include <broadcaster/error.hpp>

#include <boost/asio/error.hpp>
#include <boost/asio/execution/context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/query.hpp>
#include <boost/system/system_error.hpp>

#include <algorithm>

namespace broadcaster::detail {
namespace {

namespace asio = boost::asio;
using boost::system::error_code;
using std::chrono::milliseconds;

// Events handled per turn on the strand before yielding to other work.
constexpr int drain_batch = 1024;

// The most events one history read holds in memory.
constexpr std::size_t max_history_events = 100000;

error_code publish_error(rd_kafka_resp_err_t err, bool connected) {
    switch (err) {
        case RD_KAFKA_RESP_ERR_NO_ERROR:
            return {};
        case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE:
            return error::payload_too_large;
        case RD_KAFKA_RESP_ERR__MSG_TIMED_OUT:
            return connected ? error::timeout : error::cluster_unavailable;
        // No broker to take it: librdkafka gave up on the partition's leader.
        case RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN:
        case RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE:
        case RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION:
            return error::cluster_unavailable;
        // Sent, then the connection went: it may or may not have been stored.
        case RD_KAFKA_RESP_ERR__TRANSPORT:
        case RD_KAFKA_RESP_ERR__PURGE_INFLIGHT:
            return error::connection_lost;
        case RD_KAFKA_RESP_ERR__PURGE_QUEUE:
            return asio::error::operation_aborted;
        default:
            return error::broker_error;
    }
}

}  // namespace

template <typename Request, typename Then>
void kafka_client::run_blocking(Request request, Then then) {
    blocking_.post([once = move_only{}, self = shared_from_this(), clients = handles_,
                    request = std::move(request), then = std::move(then)]() mutable {
        auto result = request(*clients);
        clients.reset();  // the last reference destroys them: here, off the strand
        const auto strand = self->strand_;
        asio::post(strand,
                   [once = move_only{}, self = std::move(self), then = std::move(then),
                    result = std::move(result)]() mutable { then(*self, std::move(result)); });
    });
}

kafka_client::kafka_client(asio::any_io_executor strand, kafka_config config,
                           std::weak_ptr<backend_sink> sink)
    : strand_(std::move(strand)),
      config_(std::move(config)),
      sink_(std::move(sink)),
      blocking_(
          asio::use_service<blocking_service>(asio::query(strand_, asio::execution::context))),
      probe_timer_(strand_),
      backoff_(config_.reconnect_min, config_.reconnect_max),
      subscribe_timer_(strand_),
      partitioner_(configured_partitioner(config_)) {}

kafka_client::~kafka_client() {
    if (handles_) {
        handles_->target = nullptr;
        producer_events_.reset();
        consumer_events_.reset();
        release_handles({});
    }
}

// ---- connection and supervision ----------------------------------------------------

void kafka_client::connect(completion_handler handler) {
    try {
        handles_ = std::make_shared<kafka_handles>(
            config_, kafka_callbacks{on_error_event, on_delivery_report});
        handles_->target = this;
        watch_queues();
    } catch (const boost::system::system_error& e) {
        stop();
        post_completion(std::move(handler), strand_, e.code());
        return;
    }
    // Both clients connect lazily; one metadata request proves the cluster reachable.
    run_blocking([timeout = config_.connect_timeout](
                     kafka_handles& clients) { return reach_cluster(clients.producer, timeout); },
                 [once = move_only{}, handler = std::move(handler)](
                     kafka_client& self, rd_kafka_resp_err_t err) mutable {
                     error_code ec;
                     if (self.stopped_) {
                         ec = asio::error::operation_aborted;
                     } else if (err) {
                         // No broker answered within the connect timeout.
                         ec = error::unreachable;
                         self.stop();
                     } else {
                         self.connected_ = true;
                     }
                     post_completion(std::move(handler), self.strand_, ec);
                 });
}

void kafka_client::watch_queues() {
    const auto self = shared_from_this();
    producer_events_ = std::make_unique<queue_wakeup>(
        strand_, rdkafka().rd_kafka_queue_get_main(handles_->producer));
    consumer_events_ = std::make_unique<queue_wakeup>(
        strand_, rdkafka().rd_kafka_queue_get_consumer(handles_->consumer));
    producer_events_->start([self] { self->drain_producer(); });
    consumer_events_->start([self] { self->drain_consumer(); });
}

void kafka_client::on_error_event(rd_kafka_t*, int err, const char*, void* opaque) {
    if (auto* client = static_cast<std::atomic<kafka_client*>*>(opaque)->load()) {
        // Acted on once the poll returned: no app code runs inside librdkafka.
        client->brokers_down_ = client->brokers_down_ || err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN;
    }
}

void kafka_client::after_poll() {
    // librdkafka reconnects by itself; what we do is tell the app, and watch for the
    // cluster to answer again.
    if (std::exchange(brokers_down_, false) && connected_) {
        connected_ = false;
        report(connection_state::reconnecting, error::cluster_unavailable);
        probe();
    }
    // Posted, never run from here: app code must not run inside the drain (a handler
    // that publishes or throws would re-enter or break it).
    for (auto& done : finished_) {
        post_completion(std::move(done.handler), strand_, done.ec);
    }
    finished_.clear();
}

void kafka_client::probe() {
    probe_timer_.expires_after(backoff_.next());
    probe_timer_.async_wait([self = shared_from_this()](error_code ec) {
        if (ec || self->stopped_) {
            return;
        }
        self->run_blocking(
            [timeout = std::min(self->config_.connect_timeout, milliseconds(1000))](
                kafka_handles& clients) { return reach_cluster(clients.producer, timeout); },
            [](kafka_client& client, rd_kafka_resp_err_t err) {
                if (client.stopped_) {
                    return;
                }
                if (err) {
                    client.probe();
                    return;
                }
                client.connected_ = true;
                client.backoff_.reset();
                client.report(connection_state::connected, {});
            });
    });
}

void kafka_client::report(connection_state state, error_code ec) {
    if (auto sink = sink_.lock()) {
        sink->state_changed(state, ec);
    }
}

void kafka_client::disconnect(completion_handler handler) {
    if (stopped_) {
        post_completion(std::move(handler), strand_, error_code());
        return;
    }
    stop(std::move(handler));
}

void kafka_client::stop(completion_handler then) {
    if (stopped_) {
        return;
    }
    stopped_ = true;
    stopping_->store(true, std::memory_order_relaxed);
    connected_ = false;
    probe_timer_.cancel();
    if (handles_) {
        handles_->target = nullptr;
    }
    producer_events_.reset();
    consumer_events_.reset();
    // The app's own disconnect (or its broadcast's end) cut them short.
    const error_code aborted = asio::error::operation_aborted;
    for (auto& handler : publishes_) {
        if (handler) {
            post_completion(std::move(handler), strand_, aborted);
        }
    }
    publishes_.clear();
    for (auto& waiting : waiting_) {
        post_completion(std::move(waiting.handler), strand_, aborted);
    }
    waiting_.clear();
    topics_.clear();
    subscribe_timer_.cancel();
    while (!pending_.empty()) {
        finish_pending(pending_.begin()->first, aborted);
    }
    queued_.clear();
    deadlines_.clear();
    for (auto& read : history_reads_) {
        post_completion(std::move(read.handler), strand_, aborted, std::vector<event>());
    }
    history_reads_.clear();
    release_handles(std::move(then));
}

void kafka_client::release_handles(completion_handler then) {
    blocking_.post([once = move_only{}, clients = std::move(handles_), strand = strand_,
                    then = std::move(then)]() mutable {
        clients.reset();
        if (then) {
            post_completion(std::move(then), strand, error_code());
        }
    });
}

// ---- subscriptions -----------------------------------------------------------------

void kafka_client::subscribe(std::string topic, completion_handler handler) {
    if (stopped_) {
        post_completion(std::move(handler), strand_, error_code(error::not_connected));
        return;
    }
    if (const auto found = pending_.find(topic); found != pending_.end()) {
        found->second.wanted = true;
        found->second.calls.emplace_back(true, std::move(handler));
        return;
    }
    if (topics_.contains(topic)) {
        post_completion(std::move(handler), strand_, error_code());
        return;
    }
    auto& pending = pending_[topic];
    pending.id = ++next_pending_id_;
    pending.deadline = clock::now() + config_.connect_timeout;
    pending.calls.emplace_back(true, std::move(handler));
    deadlines_.emplace_back(pending.deadline, topic, pending.id);
    queued_.push_back(std::move(topic));
    arm_subscribe_timer();
    schedule_batch();
}

void kafka_client::schedule_batch() {
    if (batch_running_ || queued_.empty() || stopped_) {
        return;
    }
    // Posted: the other subscribes of this strand turn (a multi-channel subscribe) join.
    batch_running_ = true;
    asio::post(strand_, [self = shared_from_this()] { self->start_batch(); });
}

void kafka_client::start_batch() {
    std::vector<std::string> batch;
    auto deadline = clock::time_point::max();
    for (auto& topic : queued_) {
        const auto found = pending_.find(topic);
        if (found != pending_.end() && !found->second.in_batch) {
            found->second.in_batch = true;
            deadline = std::min(deadline, found->second.deadline);
            topic_handle(topic, false);  // the batch's metadata request asks for it
            batch.push_back(std::move(topic));
        }
    }
    queued_.clear();
    if (stopped_ || batch.empty()) {
        batch_running_ = false;
        return;
    }
    // Assigning every partition at its high watermark, read before subscribe
    // completes, is what makes everything published afterwards arrive.
    const auto timeout = std::chrono::duration_cast<milliseconds>(deadline - clock::now());
    run_blocking(
        [batch = std::move(batch), timeout](kafka_handles& clients) {
            return find_high_watermarks(clients.producer, clients.consumer, batch, timeout);
        },
        [](kafka_client& self, std::vector<topic_watermarks> found) {
            self.finish_batch(std::move(found));
        });
}

void kafka_client::finish_batch(std::vector<topic_watermarks> found) {
    batch_running_ = false;
    if (stopped_) {
        return;  // stop() completed every pending call
    }
    // Only topics still pending from this batch (not expired, not stopped) and still
    // wanted are assigned: all of them at once. Subscribe completes once they are
    // assigned; librdkafka's main thread then starts fetching each partition (seconds
    // for thousands of partitions on a loaded machine). Messages published meanwhile
    // wait in the broker and are fetched from the assigned offsets: late, not lost.
    const auto current = [&](const topic_watermarks& t) {
        const auto at = pending_.find(t.topic);
        return at != pending_.end() && at->second.in_batch ? &at->second : nullptr;
    };
    auto* partitions = rdkafka().rd_kafka_topic_partition_list_new(0);
    for (const auto& t : found) {
        if (auto* pending = current(t); pending && pending->wanted && !t.ec && !t.high.empty()) {
            for (std::size_t p = 0; p < t.high.size(); ++p) {
                rdkafka()
                    .rd_kafka_topic_partition_list_add(partitions, t.topic.c_str(),
                                                       static_cast<std::int32_t>(p))
                    ->offset = t.high[p];
            }
        }
    }
    error_code assign_ec;
    if (partitions->cnt > 0) {
        if (auto* failure = rdkafka().rd_kafka_incremental_assign(handles_->consumer, partitions)) {
            rdkafka().rd_kafka_error_destroy(failure);
            assign_ec = error::broker_error;
        }
    }
    rdkafka().rd_kafka_topic_partition_list_destroy(partitions);

    for (auto& t : found) {
        auto* pending = current(t);
        if (!pending) {
            continue;
        }
        if (t.ec || !t.high.empty()) {
            error_code ec = t.ec;
            if (!ec && pending->wanted) {
                ec = assign_ec;
                if (!ec) {
                    topics_.emplace(t.topic, static_cast<std::int32_t>(t.high.size()));
                }
            }
            finish_pending(t.topic, ec);
        } else {
            // Not found in time: again in the next batch, until its own deadline.
            pending->in_batch = false;
            queued_.push_back(std::move(t.topic));
        }
    }
    schedule_batch();
}

void kafka_client::finish_pending(const std::string& topic, error_code ec) {
    const auto found = pending_.find(topic);
    if (found == pending_.end()) {
        return;
    }
    auto calls = std::move(found->second.calls);
    pending_.erase(found);
    for (auto& [is_subscribe, handler] : calls) {
        post_completion(std::move(handler), strand_, is_subscribe ? ec : error_code());
    }
}

void kafka_client::arm_subscribe_timer() {
    if (subscribe_timer_armed_ || deadlines_.empty() || stopped_) {
        return;
    }
    subscribe_timer_armed_ = true;
    subscribe_timer_.expires_at(std::get<0>(deadlines_.front()));
    subscribe_timer_.async_wait([self = shared_from_this()](error_code ec) {
        self->subscribe_timer_armed_ = false;
        if (!ec && !self->stopped_) {
            self->expire_subscribes();
        }
    });
}

// connect_timeout bounds the whole subscribe, however long the batches before it took.
void kafka_client::expire_subscribes() {
    const auto now = clock::now();
    while (!deadlines_.empty() && std::get<0>(deadlines_.front()) <= now) {
        const auto [deadline, topic, id] = std::move(deadlines_.front());
        deadlines_.pop_front();
        if (const auto found = pending_.find(topic);
            found != pending_.end() && found->second.id == id) {
            finish_pending(topic, connected_ ? error::timeout : error::cluster_unavailable);
        }
    }
    arm_subscribe_timer();
}

void kafka_client::unsubscribe(const std::string& topic, completion_handler handler) {
    if (const auto at = pending_.find(topic); at != pending_.end()) {
        // Being subscribed: completes in turn, and the topic is not assigned.
        at->second.wanted = false;
        at->second.calls.emplace_back(false, std::move(handler));
        return;
    }
    const auto found = topics_.find(topic);
    error_code ec;
    if (!stopped_ && found != topics_.end()) {
        auto* partitions = rdkafka().rd_kafka_topic_partition_list_new(found->second);
        for (int p = 0; p < found->second; ++p) {
            rdkafka().rd_kafka_topic_partition_list_add(partitions, topic.c_str(), p);
        }
        // Only this topic's partitions: every other subscription keeps flowing.
        if (auto* failure =
                rdkafka().rd_kafka_incremental_unassign(handles_->consumer, partitions)) {
            rdkafka().rd_kafka_error_destroy(failure);
            ec = error::broker_error;
        }
        rdkafka().rd_kafka_topic_partition_list_destroy(partitions);
        topics_.erase(found);
    }
    post_completion(std::move(handler), strand_, ec);
}

void kafka_client::drain_consumer() {
    if (stopped_) {
        return;
    }
    const auto clients = handles_;  // alive while a message is held, even if we stop
    const auto sink = sink_.lock();
    int served = 0;
    for (; served < drain_batch && !stopped_; ++served) {
        rd_kafka_message_t* message = rdkafka().rd_kafka_consumer_poll(clients->consumer, 0);
        if (!message) {
            break;
        }
        // Errors of a partition (e.g. a topic deleted) leave the others flowing.
        if (!message->err && sink && message->rkt) {
            const std::string topic = rdkafka().rd_kafka_topic_name(message->rkt);
            if (topics_.contains(topic)) {
                const auto* payload = static_cast<const char*>(message->payload);
                sink->deliver(event(topic.substr(config_.topic_prefix.size()),
                                    std::string(payload ? payload : "", message->len),
                                    kafka_position{message->partition, message->offset}.str()));
            }
        } else if (message->err == RD_KAFKA_RESP_ERR__AUTO_OFFSET_RESET && message->rkt) {
            report_gap(message->rkt, message->partition);
        }
        rdkafka().rd_kafka_message_destroy(message);
    }
    finish_drain(served, clients, &kafka_client::drain_consumer);
}

// The offset the consumer was to fetch next is gone (retention deleted it, e.g. during
// an outage): the channel's subscribers are told, never skipped past silently. The
// partition then goes on from the oldest offset kept (auto.offset.reset=error stopped it).
void kafka_client::report_gap(rd_kafka_topic_t* topic, std::int32_t partition) {
    const std::string name = rdkafka().rd_kafka_topic_name(topic);
    if (!topics_.contains(name)) {
        return;
    }
    if (auto sink = sink_.lock()) {
        sink->history_gap(name.substr(config_.topic_prefix.size()));
    }
    if (stopped_ || !topics_.contains(name)) {
        return;  // the gap ended its last subscriber: unsubscribed meanwhile
    }
    auto* list = rdkafka().rd_kafka_topic_partition_list_new(1);
    rdkafka().rd_kafka_topic_partition_list_add(list, name.c_str(), partition);
    if (auto* failure = rdkafka().rd_kafka_incremental_unassign(handles_->consumer, list)) {
        rdkafka().rd_kafka_error_destroy(failure);
    }
    list->elems[0].offset = RD_KAFKA_OFFSET_BEGINNING;
    if (auto* failure = rdkafka().rd_kafka_incremental_assign(handles_->consumer, list)) {
        rdkafka().rd_kafka_error_destroy(failure);
    }
    rdkafka().rd_kafka_topic_partition_list_destroy(list);
}

// After a drain: acts on what the poll reported, and comes back for more if the queue
// may still hold some (librdkafka will not wake us for them).
void kafka_client::finish_drain(int served, std::shared_ptr<kafka_handles> clients,
                                void (kafka_client::*drain)()) {
    after_poll();
    if (stopped_) {
        // Stopped meanwhile: the clients may not be destroyed here, on the strand.
        blocking_.post([clients = std::move(clients)] {});
        return;
    }
    if (served == drain_batch) {
        asio::post(strand_, [self = shared_from_this(), drain] { ((*self).*drain)(); });
    }
}

// ---- history -----------------------------------------------------------------------

void kafka_client::history(std::string topic, std::string channel, history_query query,
                           backend::history_handler handler) {
    if (stopped_) {
        post_completion(std::move(handler), strand_, error_code(error::not_connected),
                        std::vector<event>());
        return;
    }
    kafka_history_request request;
    if (query.after) {
        request.after = kafka_position::parse(*query.after);
        if (!request.after) {
            post_completion(std::move(handler), strand_, error_code(error::invalid_position),
                            std::vector<event>());
            return;
        }
    }
    request.topic = std::move(topic);
    request.channel = std::move(channel);
    request.limit = query.limit;
    request.timeout = config_.connect_timeout;
    request.max_events = max_history_events;
    request.partitioner = partitioner_;
    // Constructed in place: a handler must never be move-assigned (backend.hpp).
    history_reads_.push_back(history_read{{}, std::move(request), std::move(handler)});
    if (!history_running_) {
        start_history_read();
    }
}

void kafka_client::start_history_read() {
    if (history_reads_.empty() || stopped_) {
        history_running_ = false;
        return;
    }
    history_running_ = true;
    auto request = history_reads_.front().request;
    request.stopped = [stopping = stopping_] { return stopping->load(std::memory_order_relaxed); };
    run_blocking(
        [request = std::move(request), config = config_](kafka_handles& clients) {
            try {
                return read_history(clients.history_reader(config), request);
            } catch (const boost::system::system_error& e) {
                return kafka_history_result{e.code(), {}};
            }
        },
        [](kafka_client& self, kafka_history_result result) {
            if (self.stopped_ || self.history_reads_.empty()) {
                return;  // stop() completed it
            }
            auto read = std::move(self.history_reads_.front());
            self.history_reads_.pop_front();
            if (result.ec == error::timeout && !self.connected_) {
                result.ec = error::cluster_unavailable;
            }
            post_completion(std::move(read.handler), self.strand_, result.ec,
                            std::move(result.events));
            self.start_history_read();
        });
}

// ---- publishing --------------------------------------------------------------------

void kafka_client::publish(std::string topic, std::string message, completion_handler handler) {
    if (stopped_) {
        post_completion(std::move(handler), strand_, error_code(error::not_connected));
        return;
    }
    if (waiting_.empty() && produce(topic, message, handler)) {
        return;
    }
    waiting_.push_back({std::move(topic), std::move(message), std::move(handler),
                        clock::now() + config_.publish_timeout});
}

// Hands the message to librdkafka, which copies it. False, leaving `handler` alone,
// when librdkafka's queue is full.
bool kafka_client::produce(const std::string& topic, std::string_view message,
                           completion_handler& handler) {
    const auto id = first_publish_id_ + publishes_.size();
    const auto err = rdkafka().rd_kafka_producev(
        handles_->producer, RD_KAFKA_V_RKT(topic_handle(topic)),
        RD_KAFKA_V_VALUE(const_cast<char*>(message.data()), message.size()),
        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
        // Keyed by topic: a channel's messages, whoever publishes them, share a
        // partition, so every subscriber sees them in one order.
        RD_KAFKA_V_KEY(topic.data(), topic.size()),
        RD_KAFKA_V_OPAQUE(reinterpret_cast<void*>(static_cast<std::uintptr_t>(id))),
        RD_KAFKA_V_END);
    if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
        return false;
    }
    if (err) {
        post_completion(std::move(handler), strand_, publish_error(err, connected_));
    } else {
        publishes_.push_back(std::move(handler));
    }
    return true;
}

rd_kafka_topic_t* kafka_client::topic_handle(const std::string& topic, bool ask_now) {
    auto& handle = handles_->topics[topic];
    if (!handle) {
        handle = rdkafka().rd_kafka_topic_new(handles_->producer, topic.c_str(), nullptr);
        if (!ask_now) {
            return handle;
        }
        // librdkafka would look a new topic up on its next one-second scan; ask now,
        // which also creates it if the broker creates topics on first use.
        run_blocking(
            [handle, timeout = config_.publish_timeout](kafka_handles& clients) {
                request_topic_metadata(clients.producer, handle, timeout);
                return 0;
            },
            [](kafka_client&, int) {});
    }
    return handle;
}

void kafka_client::retry_waiting_publishes() {
    while (!waiting_.empty() && !stopped_) {
        auto& next = waiting_.front();
        if (clock::now() >= next.deadline) {
            post_completion(std::move(next.handler), strand_,
                            error_code(connected_ ? error::timeout : error::cluster_unavailable));
        } else if (!produce(next.topic, next.message, next.handler)) {
            return;
        }
        waiting_.pop_front();
    }
}

void kafka_client::drain_producer() {
    if (stopped_) {
        return;
    }
    const auto clients = handles_;
    int served = 0;
    while (served < drain_batch && rdkafka().rd_kafka_poll(clients->producer, 0) > 0) {
        ++served;
    }
    finish_drain(served, clients, &kafka_client::drain_producer);
    retry_waiting_publishes();
}

void kafka_client::on_delivery_report(rd_kafka_t*, const rd_kafka_message_t* message,
                                      void* opaque) {
    if (auto* client = static_cast<std::atomic<kafka_client*>*>(opaque)->load()) {
        client->complete_publish(reinterpret_cast<std::uintptr_t>(message->_private), message->err);
    }
}

void kafka_client::complete_publish(std::uint64_t id, rd_kafka_resp_err_t err) {
    if (id < first_publish_id_ || id - first_publish_id_ >= publishes_.size()) {
        return;
    }
    completion_handler handler;
    handler.swap(publishes_[id - first_publish_id_]);
    while (!publishes_.empty() && !publishes_.front()) {
        publishes_.pop_front();
        ++first_publish_id_;
    }
    if (handler) {
        finished_.push_back({std::move(handler), publish_error(err, connected_)});
    }
}

}  // namespace broadcaster::detail
