#pragma once

#include <boost/asio/execution_context.hpp>

#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace broadcaster::detail {

// Threads for librdkafka's blocking calls (metadata and watermark requests, client
// destruction), owned by an io_context like Asio's own resolver threads: its
// shutdown joins them before the io_context's handlers are destroyed, so a job that
// posts its result back to the io_context never outlives it.
class blocking_service : public boost::asio::execution_context::service {
  public:
    using key_type = blocking_service;
    static inline boost::asio::execution_context::id id;

    explicit blocking_service(boost::asio::execution_context& context);
    ~blocking_service() override;

    // Runs `job` on one of the service's threads. After shutdown, runs it inline: the
    // jobs still posted then only release resources.
    template <typename Job>
    void post(Job job) {
        auto shared = std::make_shared<Job>(std::move(job));
        enqueue([shared] { (*shared)(); });
    }

  private:
    void enqueue(std::function<void()> job);
    void shutdown() override;
    void run();

    static constexpr std::size_t max_threads = 2;
    std::mutex mutex_;
    std::condition_variable wake_;
    std::deque<std::function<void()>> jobs_;
    std::vector<std::thread> threads_;
    std::size_t idle_ = 0;
    bool stopping_ = false;
};

}  // namespace broadcaster::detail
