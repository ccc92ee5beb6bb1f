#include "blocking_service.hpp"

namespace broadcaster::detail {

blocking_service::blocking_service(boost::asio::execution_context& context)
    : boost::asio::execution_context::service(context) {}

blocking_service::~blocking_service() {
    shutdown();
}

void blocking_service::enqueue(std::function<void()> job) {
    {
        std::unique_lock lock(mutex_);
        if (!stopping_) {
            jobs_.push_back(std::move(job));
            if (idle_ == 0 && threads_.size() < max_threads) {
                threads_.emplace_back([this] { run(); });
            } else {
                wake_.notify_one();
            }
            return;
        }
    }
    job();
}

void blocking_service::run() {
    std::unique_lock lock(mutex_);
    for (;;) {
        ++idle_;
        wake_.wait(lock, [this] { return stopping_ || !jobs_.empty(); });
        --idle_;
        if (jobs_.empty()) {
            return;  // stopping
        }
        auto job = std::move(jobs_.front());
        jobs_.pop_front();
        lock.unlock();
        job();
        job = nullptr;  // what it holds goes here, on this thread
        lock.lock();
    }
}

void blocking_service::shutdown() {
    std::vector<std::thread> threads;
    {
        std::lock_guard lock(mutex_);
        if (stopping_) {
            return;
        }
        stopping_ = true;
        threads.swap(threads_);
    }
    wake_.notify_all();
    for (auto& thread : threads) {
        thread.join();
    }
    // Threads finish the queue before exiting; nothing is left but in case a job
    // posted another meanwhile, run it here.
    std::deque<std::function<void()>> left;
    {
        std::lock_guard lock(mutex_);
        left.swap(jobs_);
    }
    for (auto& job : left) {
        job();
    }
}

}  // namespace broadcaster::detail
