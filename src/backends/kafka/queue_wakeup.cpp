#include "queue_wakeup.hpp"

#include <boost/asio/post.hpp>
#include <boost/system/system_error.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

namespace broadcaster::detail {

namespace asio = boost::asio;

queue_wakeup::queue_wakeup(const asio::any_io_executor& executor, rd_kafka_queue_t* queue)
    : queue_(queue), pipe_(std::make_shared<pipe_state>(executor)) {
    int ends[2];
    if (pipe2(ends, O_NONBLOCK | O_CLOEXEC) != 0) {
        rdkafka().rd_kafka_queue_destroy(queue_);
        throw boost::system::system_error(errno, boost::system::system_category(), "pipe2");
    }
    pipe_->read_end.assign(ends[0]);
    pipe_->write_end = ends[1];
    rdkafka().rd_kafka_queue_io_event_enable(queue_, pipe_->write_end, "1", 1);
}

queue_wakeup::~queue_wakeup() {
    // librdkafka must stop writing before the pipe closes, and every queue reference
    // must be gone before its client is destroyed.
    rdkafka().rd_kafka_queue_io_event_enable(queue_, -1, nullptr, 0);
    rdkafka().rd_kafka_queue_destroy(queue_);
    pipe_->closed = true;
    boost::system::error_code ignored;
    pipe_->read_end.cancel(ignored);
}

queue_wakeup::pipe_state::~pipe_state() {
    if (write_end >= 0) {
        close(write_end);
    }
}

void queue_wakeup::start(std::function<void()> on_wake) {
    // Events may have arrived before the pipe was watched.
    asio::post(pipe_->read_end.get_executor(), [pipe = pipe_, on_wake] {
        if (!pipe->closed) {
            on_wake();
        }
    });
    wait(pipe_, std::move(on_wake));
}

void queue_wakeup::wait(std::shared_ptr<pipe_state> pipe, std::function<void()> on_wake) {
    auto& read_end = pipe->read_end;
    read_end.async_wait(asio::posix::stream_descriptor::wait_read,
                        [pipe = std::move(pipe),
                         on_wake = std::move(on_wake)](boost::system::error_code ec) mutable {
                            if (ec || pipe->closed) {
                                return;
                            }
                            // Empty the pipe first: a write after this is a new wake-up.
                            char bytes[256];
                            while (read(pipe->read_end.native_handle(), bytes, sizeof bytes) > 0) {
                            }
                            on_wake();
                            if (!pipe->closed) {
                                wait(std::move(pipe), std::move(on_wake));
                            }
                        });
}

}  // namespace broadcaster::detail
