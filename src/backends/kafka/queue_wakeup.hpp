#pragma once

#include "rdkafka_api.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>

#include <functional>
#include <memory>

namespace broadcaster::detail {

// Wakes the I/O thread when a librdkafka queue becomes non-empty, without a polling
// thread: librdkafka writes a byte to a pipe (rd_kafka_queue_io_event_enable) whose
// read end Asio watches. librdkafka writes only when the queue goes from empty to
// non-empty, so the owner must drain the queue fully after every wake-up.
class queue_wakeup {
  public:
    // Takes over `queue` (a reference from rd_kafka_queue_get_*). Throws system_error
    // if no pipe can be made.
    queue_wakeup(const boost::asio::any_io_executor& executor, rd_kafka_queue_t* queue);
    ~queue_wakeup();
    queue_wakeup(const queue_wakeup&) = delete;
    queue_wakeup& operator=(const queue_wakeup&) = delete;

    // Calls `on_wake` (with no error) each time the queue may have become non-empty,
    // and once right away, until destroyed. `on_wake` must keep its owner alive.
    void start(std::function<void()> on_wake);

  private:
    // Shared with the pending wait, which may complete after the destructor ran.
    struct pipe_state {
        explicit pipe_state(const boost::asio::any_io_executor& executor) : read_end(executor) {}
        ~pipe_state();
        boost::asio::posix::stream_descriptor read_end;
        int write_end = -1;
        bool closed = false;
    };
    static void wait(std::shared_ptr<pipe_state> pipe, std::function<void()> on_wake);

    rd_kafka_queue_t* queue_;
    std::shared_ptr<pipe_state> pipe_;
};

}  // namespace broadcaster::detail
