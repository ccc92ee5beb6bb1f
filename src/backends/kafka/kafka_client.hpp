#pragma once

#include "../reconnect_backoff.hpp"
#include "blocking_service.hpp"
#include "kafka_config.hpp"
#include "kafka_handles.hpp"
#include "kafka_history.hpp"
#include "kafka_requests.hpp"
#include "queue_wakeup.hpp"
#include "rdkafka_api.hpp"

#include <broadcaster/backend.hpp>

#include <boost/asio/steady_timer.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <tuple>
#include <unordered_map>
#include <utility>
#include <vector>

namespace broadcaster::detail {

// The Kafka backend's state, shared with every pending operation. Two librdkafka
// clients: a producer, and a consumer that never joins its group: each subscribed
// topic is assigned whole, at its high watermark, so every broadcast instance gets
// every message (broadcast, not queue, semantics). Their event queues wake the strand
// through `queue_wakeup`; librdkafka's blocking requests (metadata, watermarks) run
// on the io_context's `blocking_service` threads, never on the strand. librdkafka
// reconnects by itself; this class reports the outage and the recovery.
class kafka_client : public std::enable_shared_from_this<kafka_client> {
  public:
    using completion_handler = backend::completion_handler;

    kafka_client(boost::asio::any_io_executor strand, kafka_config config,
                 std::weak_ptr<backend_sink> sink);
    ~kafka_client();

    void connect(completion_handler handler);
    void disconnect(completion_handler handler);
    void subscribe(std::string topic, completion_handler handler);
    void unsubscribe(const std::string& topic, completion_handler handler);
    void publish(std::string topic, std::string message, completion_handler handler);
    // Reads `channel`'s history (see kafka_history.hpp); one read at a time, in order.
    void history(std::string topic, std::string channel, history_query query,
                 backend::history_handler handler);
    // Closes everything; pending operations fail with operation_aborted. `then`
    // completes once librdkafka's clients are destroyed.
    void stop(completion_handler then = {});

  private:
    using clock = std::chrono::steady_clock;
    struct finished_publish {
        completion_handler handler;
        boost::system::error_code ec;
    };
    struct waiting_publish {
        std::string topic;
        std::string message;
        completion_handler handler;
        clock::time_point deadline;
    };

    // A topic being subscribed: the calls made for it meanwhile, completed in order once
    // its watermarks are known (or it failed, or connect_timeout passed).
    struct pending_topic {
        std::uint64_t id = 0;
        clock::time_point deadline;
        bool wanted = true;     // the last call was a subscribe
        bool in_batch = false;  // its watermarks are being asked for
        std::vector<std::pair<bool, completion_handler>> calls;  // (is subscribe, handler)
    };

    // Runs `request(handles)` on the blocking threads, then `then(*this, result)` on the
    // strand. Keeps the client alive meanwhile.
    template <typename Request, typename Then>
    void run_blocking(Request request, Then then);

    void start_history_read();
    // Told by the consumer that `topic`'s partition lost offsets it had not read yet.
    void report_gap(rd_kafka_topic_t* topic, std::int32_t partition);
    void watch_queues();
    void drain_producer();
    void drain_consumer();
    bool produce(const std::string& topic, std::string_view message, completion_handler& handler);
    // The producer's handle of `topic`; `ask_now` asks for its metadata at once.
    rd_kafka_topic_t* topic_handle(const std::string& topic, bool ask_now = true);
    void schedule_batch();
    void start_batch();
    void finish_batch(std::vector<topic_watermarks> found);
    void arm_subscribe_timer();
    void expire_subscribes();
    // Completes `topic`'s pending calls: subscribes with `ec`, unsubscribes with success.
    void finish_pending(const std::string& topic, boost::system::error_code ec);
    void retry_waiting_publishes();
    void complete_publish(std::uint64_t id, rd_kafka_resp_err_t err);
    void after_poll();
    void finish_drain(int served, std::shared_ptr<kafka_handles> clients,
                      void (kafka_client::*drain)());
    void probe();
    void report(connection_state state, boost::system::error_code ec);
    // Destroys librdkafka's clients on the blocking threads, then completes `then`.
    void release_handles(completion_handler then);

    static void on_delivery_report(rd_kafka_t*, const rd_kafka_message_t* message, void* opaque);
    static void on_error_event(rd_kafka_t*, int err, const char* reason, void* opaque);

    const boost::asio::any_io_executor strand_;
    const kafka_config config_;
    const std::weak_ptr<backend_sink> sink_;

    blocking_service& blocking_;
    std::shared_ptr<kafka_handles> handles_;
    std::unique_ptr<queue_wakeup> producer_events_;
    std::unique_ptr<queue_wakeup> consumer_events_;
    bool connected_ = false;
    bool stopped_ = false;
    // stopped_, for history reads on the blocking threads.
    std::shared_ptr<std::atomic<bool>> stopping_ = std::make_shared<std::atomic<bool>>(false);
    boost::asio::steady_timer probe_timer_;
    reconnect_backoff backoff_;

    // Publishes handed to librdkafka, by the id their delivery report carries:
    // publishes_[id - first_publish_id_]. Reports come in order within a partition,
    // not across topics: a completed entry is emptied and the front trimmed.
    std::deque<completion_handler> publishes_;
    std::uint64_t first_publish_id_ = 0;
    // Reported during the current poll, acted on after it (no app code runs inside
    // librdkafka's callbacks).
    std::vector<finished_publish> finished_;
    bool brokers_down_ = false;
    // Publishes waiting for room in librdkafka's queue, in order.
    std::deque<waiting_publish> waiting_;

    // Subscribed topics and their partition counts; only these are delivered.
    std::unordered_map<std::string, std::int32_t> topics_;
    // Subscribes are batched: the calls of one strand turn, or made while a batch is
    // running, are served together by one metadata request and one ListOffsets round.
    std::unordered_map<std::string, pending_topic> pending_;
    std::vector<std::string> queued_;  // waiting for the next batch
    bool batch_running_ = false;       // or posted
    std::uint64_t next_pending_id_ = 0;
    // Pending topics by deadline (in order: every deadline is now + connect_timeout);
    // the timer fails what is still pending at its deadline.
    std::deque<std::tuple<clock::time_point, std::string, std::uint64_t>> deadlines_;
    boost::asio::steady_timer subscribe_timer_;
    bool subscribe_timer_armed_ = false;

    // History reads share one reader client: queued, run one after the other.
    struct history_read {
        move_only once;
        kafka_history_request request;
        backend::history_handler handler;
    };
    std::deque<history_read> history_reads_;
    bool history_running_ = false;
    const kafka_partitioner partitioner_;
};

}  // namespace broadcaster::detail
