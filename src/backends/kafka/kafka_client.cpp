#include "kafka_client.hpp"

#include "../../completion.hpp"

#include <broadcaster/error.hpp>

#include <boost/asio/execution/context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/query.hpp>
#include <boost/system/system_error.hpp>

#include <algorithm>
#include <atomic>
#include <random>
#include <thread>

namespace broadcaster::detail {
namespace {

namespace asio = boost::asio;
using boost::system::error_code;
using std::chrono::milliseconds;

// Events handled per turn on the strand before yielding to other work.
constexpr int drain_batch = 1024;

int to_ms(milliseconds duration) {
    return static_cast<int>(std::clamp<milliseconds::rep>(duration.count(), 1, 24L * 3600 * 1000));
}

// librdkafka writes to stderr by default; the mock cluster alone warns on every topic
// it creates. Errors that matter reach us through error_cb.
void log_nothing(const rd_kafka_t*, int, const char*, const char*) {}

std::string random_name(const char* kind) {
    std::random_device device;
    const auto value = (std::uint64_t(device()) << 32) | device();
    char text[64];
    std::snprintf(text, sizeof text, "broadcaster-%s-%016llx", kind,
                  static_cast<unsigned long long>(value));
    return text;
}

error_code publish_error(rd_kafka_resp_err_t err, bool connected) {
    switch (err) {
        case RD_KAFKA_RESP_ERR_NO_ERROR:
            return {};
        case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE:
            return error::payload_too_large;
        case RD_KAFKA_RESP_ERR__MSG_TIMED_OUT:
            return connected ? error::timeout : error::not_connected;
        case RD_KAFKA_RESP_ERR__PURGE_QUEUE:
        case RD_KAFKA_RESP_ERR__PURGE_INFLIGHT:
            return error::not_connected;
        default:
            return error::broker_error;
    }
}

// Asks any broker for metadata: whether the cluster can be reached.
rd_kafka_resp_err_t reach_cluster(rd_kafka_t* client, milliseconds timeout) {
    const rd_kafka_metadata_t* metadata = nullptr;
    const auto err = rd_kafka_metadata(client, 0, nullptr, &metadata, to_ms(timeout));
    if (metadata) {
        rd_kafka_metadata_destroy(metadata);
    }
    return err;
}

struct watermarks {
    error_code ec;
    std::vector<std::int64_t> high;  // per partition
};

// The high watermark of every partition of `topic`, which a metadata request creates
// if the broker creates topics on first use. Blocking; waits while the new topic's
// partitions get their leaders.
watermarks find_high_watermarks(rd_kafka_t* producer, rd_kafka_t* consumer, rd_kafka_topic_t* topic,
                                milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    const auto remaining = [&] {
        return std::chrono::duration_cast<milliseconds>(deadline -
                                                        std::chrono::steady_clock::now());
    };
    const auto retry_later = [&] {
        if (remaining() <= milliseconds(0)) {
            return false;
        }
        std::this_thread::sleep_for(milliseconds(10));
        return true;
    };
    watermarks out;
    int partitions = 0;
    rd_kafka_resp_err_t last = RD_KAFKA_RESP_ERR_NO_ERROR;
    do {
        const rd_kafka_metadata_t* metadata = nullptr;
        last = rd_kafka_metadata(producer, 0, topic, &metadata, to_ms(remaining()));
        if (!last && metadata->topic_cnt == 1) {
            const auto& found = metadata->topics[0];
            last = found.err;
            const bool led = std::all_of(found.partitions, found.partitions + found.partition_cnt,
                                         [](const auto& p) { return p.leader >= 0 && !p.err; });
            if (!last && found.partition_cnt > 0 && led) {
                partitions = found.partition_cnt;
            } else if (!last) {
                last = RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE;
            }
        }
        if (metadata) {
            rd_kafka_metadata_destroy(metadata);
        }
        if (last == RD_KAFKA_RESP_ERR__TIMED_OUT || last == RD_KAFKA_RESP_ERR__TRANSPORT) {
            out.ec = error::not_connected;
            return out;
        }
    } while (partitions == 0 && retry_later());
    if (partitions == 0) {
        // Still unknown: the broker does not create topics on first use.
        out.ec = last == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART ? error::broker_error
                                                                 : error::not_connected;
        return out;
    }
    for (int partition = 0; partition < partitions; ++partition) {
        std::int64_t low = 0;
        std::int64_t high = 0;
        rd_kafka_resp_err_t err;
        while (
            (err = rd_kafka_query_watermark_offsets(consumer, rd_kafka_topic_name(topic), partition,
                                                    &low, &high, to_ms(remaining()))) &&
            err != RD_KAFKA_RESP_ERR__TIMED_OUT && retry_later()) {
        }
        if (err) {
            out.ec = error::not_connected;
            return out;
        }
        out.high.push_back(high);
    }
    return out;
}

}  // namespace

// The two librdkafka clients. Destroyed on the blocking pool (rd_kafka_destroy waits
// for librdkafka's threads).
struct kafka_client::handles {
    handles(const kafka_config& config) {
        producer = make(RD_KAFKA_PRODUCER, config);
        try {
            consumer = make(RD_KAFKA_CONSUMER, config);
        } catch (...) {
            rd_kafka_destroy(producer);
            throw;
        }
        // The consumer's own events (errors) come through its consumer queue.
        rd_kafka_poll_set_consumer(consumer);
    }
    ~handles() {
        for (const auto& [name, topic] : topics) {
            rd_kafka_topic_destroy(topic);
        }
        rd_kafka_purge(producer, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
        rd_kafka_destroy(producer);
        // It never joined its group: there is nothing to leave.
        rd_kafka_destroy_flags(consumer, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
    }
    handles(const handles&) = delete;
    handles& operator=(const handles&) = delete;

    rd_kafka_t* make(rd_kafka_type_t type, const kafka_config& config) {
        rd_kafka_conf_t* conf = rd_kafka_conf_new();
        char error_text[512];
        const auto set = [&](const std::string& name, const std::string& value) {
            if (rd_kafka_conf_set(conf, name.c_str(), value.c_str(), error_text,
                                  sizeof error_text) != RD_KAFKA_CONF_OK) {
                rd_kafka_conf_destroy(conf);
                throw boost::system::system_error(
                    error::invalid_url,
                    "'" + config.redacted_url + "': librdkafka refused '" + name + "'");
            }
        };
        bool debug = false;
        set("bootstrap.servers", config.bootstrap_servers);
        set("client.id", "broadcaster");
        set("socket.nagle.disable", "true");
        set("reconnect.backoff.ms", std::to_string(config.reconnect_min.count()));
        set("reconnect.backoff.max.ms", std::to_string(config.reconnect_max.count()));
        if (type == RD_KAFKA_PRODUCER) {
            // Latency first: send at once (batches still form while requests are in
            // flight); idempotence keeps each publisher's order across retries.
            set("linger.ms", "0");
            set("enable.idempotence", "true");
            set("message.timeout.ms", std::to_string(to_ms(config.publish_timeout)));
            set("message.max.bytes", std::to_string(2 * 1024 * 1024));
        } else {
            // The group is only a name librdkafka requires for assign(): it is never
            // joined and nothing is committed.
            set("group.id", random_name("group"));
            set("enable.auto.commit", "false");
            set("enable.auto.offset.store", "false");
            set("auto.offset.reset", "latest");
            set("fetch.wait.max.ms", "100");
        }
        const auto& own = type == RD_KAFKA_PRODUCER ? config.producer : config.consumer;
        for (const auto* settings : {&config.common, &own}) {
            for (const auto& [name, value] : *settings) {
                set(name, value);
                debug = debug || name == "debug";
            }
        }
        if (!debug) {
            rd_kafka_conf_set_log_cb(conf, log_nothing);
        }
        rd_kafka_conf_set_opaque(conf, &target);
        rd_kafka_conf_set_error_cb(conf, on_error_event);
        if (type == RD_KAFKA_PRODUCER) {
            rd_kafka_conf_set_dr_msg_cb(conf, on_delivery_report);
        }
        rd_kafka_t* client = rd_kafka_new(type, conf, error_text, sizeof error_text);
        if (!client) {
            rd_kafka_conf_destroy(conf);
            throw boost::system::system_error(error::invalid_url,
                                              "'" + config.redacted_url + "': " + error_text);
        }
        return client;
    }

    // What librdkafka's callbacks reach; cleared when the client stops.
    std::atomic<kafka_client*> target{nullptr};
    rd_kafka_t* producer = nullptr;
    rd_kafka_t* consumer = nullptr;
    // The producer's topic handles, made on the strand; blocking requests use them.
    std::unordered_map<std::string, rd_kafka_topic_t*> topics;
};

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
      backoff_(config_.reconnect_min),
      publisher_key_(random_name("publisher")) {}

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
        handles_ = std::make_shared<handles>(config_);
        handles_->target = this;
        watch_queues();
    } catch (const boost::system::system_error& e) {
        stop();
        post_completion(std::move(handler), strand_, e.code());
        return;
    }
    // Both clients connect lazily; one metadata request proves the cluster reachable.
    run_blocking([timeout = config_.connect_timeout](
                     handles& clients) { return reach_cluster(clients.producer, timeout); },
                 [once = move_only{}, handler = std::move(handler)](
                     kafka_client& self, rd_kafka_resp_err_t err) mutable {
                     error_code ec;
                     if (self.stopped_) {
                         ec = asio::error::operation_aborted;
                     } else if (err) {
                         // No broker answered within the connect timeout.
                         ec = error::not_connected;
                         self.stop();
                     } else {
                         self.connected_ = true;
                     }
                     post_completion(std::move(handler), self.strand_, ec);
                 });
}

void kafka_client::watch_queues() {
    const auto self = shared_from_this();
    producer_events_ =
        std::make_unique<queue_wakeup>(strand_, rd_kafka_queue_get_main(handles_->producer));
    consumer_events_ =
        std::make_unique<queue_wakeup>(strand_, rd_kafka_queue_get_consumer(handles_->consumer));
    producer_events_->start([self] { self->drain_producer(); });
    consumer_events_->start([self] { self->drain_consumer(); });
}

void kafka_client::on_error_event(rd_kafka_t*, int err, const char*, void* opaque) {
    if (auto* client = static_cast<std::atomic<kafka_client*>*>(opaque)->load()) {
        client->on_error(err);
    }
}

void kafka_client::on_error(int err) {
    // librdkafka reconnects by itself; what we do is tell the app, and watch for the
    // cluster to answer again.
    if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN && connected_) {
        connected_ = false;
        report(connection_state::reconnecting, error::not_connected);
        probe();
    }
}

void kafka_client::probe() {
    probe_timer_.expires_after(backoff_);
    backoff_ = std::min(backoff_ * 2, config_.reconnect_max);
    probe_timer_.async_wait([self = shared_from_this()](error_code ec) {
        if (ec || self->stopped_) {
            return;
        }
        self->run_blocking(
            [timeout = std::min(self->config_.connect_timeout, milliseconds(1000))](
                handles& clients) { return reach_cluster(clients.producer, timeout); },
            [](kafka_client& client, rd_kafka_resp_err_t err) {
                if (client.stopped_) {
                    return;
                }
                if (err) {
                    client.probe();
                    return;
                }
                client.connected_ = true;
                client.backoff_ = client.config_.reconnect_min;
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
    connected_ = false;
    probe_timer_.cancel();
    if (handles_) {
        handles_->target = nullptr;
    }
    producer_events_.reset();
    consumer_events_.reset();
    for (auto& handler : publishes_) {
        if (handler) {
            post_completion(std::move(handler), strand_, error_code(error::not_connected));
        }
    }
    publishes_.clear();
    for (auto& waiting : waiting_) {
        post_completion(std::move(waiting.handler), strand_, error_code(error::not_connected));
    }
    waiting_.clear();
    topics_.clear();
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
    if (stopped_ || topics_.contains(topic)) {
        post_completion(std::move(handler), strand_,
                        stopped_ ? error_code(error::not_connected) : error_code());
        return;
    }
    // Assigning every partition at its high watermark, read before subscribe
    // completes, is what makes everything published afterwards arrive.
    run_blocking(
        [handle = topic_handle(topic), timeout = config_.connect_timeout](handles& clients) {
            return find_high_watermarks(clients.producer, clients.consumer, handle, timeout);
        },
        [once = move_only{}, topic, handler = std::move(handler)](kafka_client& self,
                                                                  watermarks found) mutable {
            error_code ec = found.ec;
            if (self.stopped_) {
                ec = error::not_connected;
            } else if (!ec && !self.topics_.contains(topic)) {
                const int count = static_cast<int>(found.high.size());
                auto* partitions = rd_kafka_topic_partition_list_new(count);
                for (int p = 0; p < count; ++p) {
                    rd_kafka_topic_partition_list_add(partitions, topic.c_str(), p)->offset =
                        found.high[p];
                }
                if (auto* failure =
                        rd_kafka_incremental_assign(self.handles_->consumer, partitions)) {
                    rd_kafka_error_destroy(failure);
                    ec = error::broker_error;
                } else {
                    self.topics_.emplace(topic, count);
                }
                rd_kafka_topic_partition_list_destroy(partitions);
            }
            post_completion(std::move(handler), self.strand_, ec);
        });
}

void kafka_client::unsubscribe(const std::string& topic, completion_handler handler) {
    const auto found = topics_.find(topic);
    error_code ec;
    if (!stopped_ && found != topics_.end()) {
        auto* partitions = rd_kafka_topic_partition_list_new(found->second);
        for (int p = 0; p < found->second; ++p) {
            rd_kafka_topic_partition_list_add(partitions, topic.c_str(), p);
        }
        // Only this topic's partitions: every other subscription keeps flowing.
        if (auto* failure = rd_kafka_incremental_unassign(handles_->consumer, partitions)) {
            rd_kafka_error_destroy(failure);
            ec = error::broker_error;
        }
        rd_kafka_topic_partition_list_destroy(partitions);
        topics_.erase(found);
    }
    post_completion(std::move(handler), strand_, ec);
}

void kafka_client::drain_consumer() {
    const auto sink = sink_.lock();
    for (int i = 0; i < drain_batch; ++i) {
        if (stopped_) {
            return;
        }
        rd_kafka_message_t* message = rd_kafka_consumer_poll(handles_->consumer, 0);
        if (!message) {
            return;
        }
        // Errors of a partition (e.g. a topic deleted) leave the others flowing.
        if (!message->err && sink && message->rkt) {
            const std::string topic = rd_kafka_topic_name(message->rkt);
            if (topics_.contains(topic)) {
                const auto* payload = static_cast<const char*>(message->payload);
                sink->deliver(event(topic.substr(config_.topic_prefix.size()),
                                    std::string(payload ? payload : "", message->len)));
            }
        }
        rd_kafka_message_destroy(message);
    }
    // More may be queued, and librdkafka will not wake us for them.
    asio::post(strand_, [self = shared_from_this()] { self->drain_consumer(); });
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
    const auto err = rd_kafka_producev(
        handles_->producer, RD_KAFKA_V_RKT(topic_handle(topic)),
        RD_KAFKA_V_VALUE(const_cast<char*>(message.data()), message.size()),
        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_KEY(publisher_key_.data(), publisher_key_.size()),
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

rd_kafka_topic_t* kafka_client::topic_handle(const std::string& topic) {
    auto& handle = handles_->topics[topic];
    if (!handle) {
        handle = rd_kafka_topic_new(handles_->producer, topic.c_str(), nullptr);
        // librdkafka would look a new topic up on its next one-second scan; ask now,
        // which also creates it if the broker creates topics on first use.
        run_blocking(
            [handle, timeout = config_.publish_timeout](handles& clients) {
                const rd_kafka_metadata_t* metadata = nullptr;
                rd_kafka_metadata(clients.producer, 0, handle, &metadata, to_ms(timeout));
                if (metadata) {
                    rd_kafka_metadata_destroy(metadata);
                }
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
                            error_code(connected_ ? error::timeout : error::not_connected));
        } else if (!produce(next.topic, next.message, next.handler)) {
            return;
        }
        waiting_.pop_front();
    }
}

void kafka_client::drain_producer() {
    for (int i = 0; i < drain_batch; ++i) {
        if (stopped_) {
            return;
        }
        if (rd_kafka_poll(handles_->producer, 0) == 0) {
            retry_waiting_publishes();
            return;
        }
    }
    retry_waiting_publishes();
    asio::post(strand_, [self = shared_from_this()] { self->drain_producer(); });
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
        dispatch_completion(std::move(handler), strand_, publish_error(err, connected_));
    }
}

}  // namespace broadcaster::detail
