#pragma once

// The sends of one fan-out in one system call. At a steady rate every message reaches
// each client alone: one `send` per client per message, and the system call's own cost
// is a good part of it. While a round is open on a thread (the room opens one per
// message it fans out), the write-behind streams of that thread hand their sends to
// the round instead of making them; when the round closes, they go to the kernel as one
// io_uring submission, each without waiting (MSG_DONTWAIT), and each stream learns what
// its socket did not take (it then goes out as any backlog does).
//
// Without io_uring (not built with liburing, or the kernel or a sandbox refuses it),
// rounds collect nothing and every send is made at once, as before.

#include <boost/system/error_code.hpp>

#include <memory>
#include <string_view>

namespace chat {

class send_batcher {
  public:
    // Told, once the round's submission completed, what the socket did not take (empty:
    // all of it) or what failed.
    using completion = void (*)(const std::shared_ptr<void>& owner, std::string_view unsent,
                                boost::system::error_code ec);

    // The thread's batcher while a round is open on the thread, else null.
    static send_batcher* collecting() noexcept;

    // Queues a send of `bytes` (copied; once for consecutive sends of the same bytes) on
    // `fd`, which has no other send queued. `owner` is kept alive until `done` has been
    // called with the outcome. Past 1 MiB, what was queued is submitted first.
    void add(int fd, std::string_view bytes, std::shared_ptr<void> owner, completion done);

    // Opens a round on this thread for its lifetime (nested rounds are one); closing it
    // submits what was collected and calls each completion.
    class round {
      public:
        round() noexcept;
        ~round();
        round(const round&) = delete;
        round& operator=(const round&) = delete;

      private:
        send_batcher* opened_ = nullptr;
    };

    // Whether rounds batch on this thread (io_uring is usable here).
    static bool available() noexcept;

    send_batcher(const send_batcher&) = delete;
    send_batcher& operator=(const send_batcher&) = delete;
    ~send_batcher();

  private:
    struct impl;
    explicit send_batcher(std::unique_ptr<impl> implementation) noexcept;
    static send_batcher* of_this_thread() noexcept;
    void submit() noexcept;

    std::unique_ptr<impl> impl_;
};

}  // namespace chat
