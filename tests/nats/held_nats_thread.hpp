#pragma once

#include <future>

namespace broadcaster::test {

// Holds one of nats.c's shared threads inside a callback until released. A derived
// class makes nats.c call `hold(this)` on that thread, then calls wait_until_held().
class held_nats_thread {
  public:
    void release() {
        if (!released_) {
            released_ = true;
            release_.set_value();
        }
    }

  protected:
    void wait_until_held() { entered_.get_future().wait(); }
    static void hold(held_nats_thread* self) {
        // A copy: once released, the holder may be destroyed while this still waits.
        auto release = self->release_future_;
        self->entered_.set_value();
        release.wait();
    }

  private:
    std::promise<void> entered_;
    std::promise<void> release_;
    std::shared_future<void> release_future_ = release_.get_future().share();
    bool released_ = false;
};

}  // namespace broadcaster::test
