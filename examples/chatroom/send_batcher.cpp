#include "send_batcher.hpp"

#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <string>
#include <utility>
#include <vector>

#ifdef BROADCASTER_CHAT_WITH_LIBURING
#include <liburing.h>
#endif

namespace chat {

#ifdef BROADCASTER_CHAT_WITH_LIBURING

struct send_batcher::impl {
    struct pending_send {
        int fd;
        std::size_t offset;  // in `bytes`
        std::size_t size;
        std::shared_ptr<void> owner;
        completion done;
    };

    // A submission of at most this many sends; a bigger round takes several.
    static constexpr unsigned ring_entries = 256;
    // A round holding this many bytes is submitted before it takes more: a big message
    // for many clients does not pile up in one buffer.
    static constexpr std::size_t max_bytes = 1024 * 1024;
    // What a round of big messages made `bytes` grow to is not kept past this.
    static constexpr std::size_t kept_capacity = 2 * max_bytes;

    io_uring ring{};
    std::string bytes;  // every send of the round, back to back
    std::vector<pending_send> sends;
    std::vector<bool> done;  // of one submission's sends (kept: no allocation per message)
    // A submission whose outcome was not all collected (the ring failed): the kernel may
    // still read its bytes, which are kept in `retired` until the thread ends.
    bool uncertain = false;
    std::vector<std::string> retired;

    ~impl() { io_uring_queue_exit(&ring); }

    // Submits sends [first, first + count) and waits for all of them: without waiting
    // on a socket (MSG_DONTWAIT), each completes at once. False if the ring failed (it
    // should not): the sends it did not take are left to the streams' ordinary path,
    // and the ring is not used again.
    bool submit(std::size_t first, unsigned count) {
        for (unsigned i = 0; i < count; ++i) {
            const auto& send = sends[first + i];
            auto* sqe = io_uring_get_sqe(&ring);
            io_uring_prep_send(sqe, send.fd, bytes.data() + send.offset, send.size,
                               MSG_DONTWAIT | MSG_NOSIGNAL);
            io_uring_sqe_set_data64(sqe, first + i);
        }
        const int submitted = std::max(io_uring_submit(&ring), 0);
        done.assign(count, false);
        for (int completed = 0; completed < submitted;) {
            io_uring_cqe* cqe = nullptr;
            const int ec = io_uring_wait_cqe(&ring, &cqe);
            if (ec == -EINTR || ec == -EAGAIN) {
                continue;
            }
            if (ec < 0) {
                break;
            }
            const auto index = io_uring_cqe_get_data64(cqe);
            const int result = cqe->res;
            io_uring_cqe_seen(&ring, cqe);
            done[index - first] = true;
            complete(sends[index], result);
            ++completed;
        }
        bool whole = true;
        for (unsigned i = 0; i < count; ++i) {
            if (done[i]) {
                continue;
            }
            whole = false;
            if (i < static_cast<unsigned>(submitted)) {
                // Submitted, outcome unknown: the bytes may have gone, or may still be
                // read from `bytes` (kept: see `uncertain`). Sending them again could
                // corrupt the client's stream: it is dropped instead.
                uncertain = true;
                complete(sends[first + i], -EIO);
            } else {
                complete(sends[first + i], -EAGAIN);  // never submitted: sent as a backlog
            }
        }
        return whole;
    }

    void complete(pending_send& send, int result) {
        const std::string_view all(bytes.data() + send.offset, send.size);
        boost::system::error_code ec;
        std::string_view unsent;
        if (result >= 0) {
            unsent =
                all.substr(std::min<std::size_t>(static_cast<std::size_t>(result), all.size()));
        } else if (result == -EAGAIN || result == -EINTR) {
            unsent = all;  // the socket is full: the stream waits for room
        } else {
            ec.assign(-result, boost::system::system_category());
        }
        send.done(send.owner, unsent, ec);
        send.owner.reset();
    }
};

namespace {
thread_local bool io_uring_refused = false;
thread_local send_batcher* open_round = nullptr;
}  // namespace

send_batcher* send_batcher::of_this_thread() noexcept {
    thread_local std::unique_ptr<send_batcher> batcher;
    if (!batcher && !io_uring_refused) {
        auto implementation = std::make_unique<impl>();
        if (io_uring_queue_init(impl::ring_entries, &implementation->ring, 0) != 0) {
            io_uring_refused = true;  // no io_uring here: every send at once
            return nullptr;
        }
        batcher.reset(new send_batcher(std::move(implementation)));
    }
    return batcher.get();
}

void send_batcher::submit() noexcept {
    auto& sends = impl_->sends;
    for (std::size_t first = 0; first < sends.size(); first += impl::ring_entries) {
        const auto count = std::min<std::size_t>(impl::ring_entries, sends.size() - first);
        if (io_uring_refused) {
            for (std::size_t i = first; i < first + count; ++i) {
                impl_->complete(sends[i], -EAGAIN);
            }
        } else if (!impl_->submit(first, static_cast<unsigned>(count))) {
            io_uring_refused = true;
        }
    }
    sends.clear();
    if (std::exchange(impl_->uncertain, false)) {
        impl_->retired.push_back(std::move(impl_->bytes));
        impl_->bytes = std::string();
    } else if (impl_->bytes.capacity() > impl::kept_capacity) {
        std::string().swap(impl_->bytes);
    } else {
        impl_->bytes.clear();
    }
}

void send_batcher::add(int fd, std::string_view bytes, std::shared_ptr<void> owner,
                       completion done) {
    auto& sends = impl_->sends;
    // Most clients of a room get the same frame: the same bytes are kept once.
    if (!sends.empty() && sends.back().size == bytes.size() &&
        std::string_view(impl_->bytes).substr(sends.back().offset, bytes.size()) == bytes) {
        sends.push_back({fd, sends.back().offset, bytes.size(), std::move(owner), done});
        return;
    }
    if (!sends.empty() && impl_->bytes.size() + bytes.size() > impl::max_bytes) {
        submit();
    }
    const auto offset = impl_->bytes.size();
    impl_->bytes.append(bytes);
    sends.push_back({fd, offset, bytes.size(), std::move(owner), done});
}

bool send_batcher::available() noexcept {
    return of_this_thread() != nullptr;
}

send_batcher* send_batcher::collecting() noexcept {
    return open_round;
}

send_batcher::round::round() noexcept {
    if (open_round != nullptr || io_uring_refused) {
        return;  // nested: the outer round collects
    }
    opened_ = of_this_thread();
    open_round = opened_;
}

send_batcher::round::~round() {
    if (opened_ != nullptr) {
        open_round = nullptr;
        opened_->submit();
    }
}

#else  // without liburing: no batching

struct send_batcher::impl {};

send_batcher* send_batcher::of_this_thread() noexcept {
    return nullptr;
}
send_batcher* send_batcher::collecting() noexcept {
    return nullptr;
}
send_batcher::round::round() noexcept {}
send_batcher::round::~round() {}
void send_batcher::submit() noexcept {}
void send_batcher::add(int, std::string_view, std::shared_ptr<void>, completion) {}
bool send_batcher::available() noexcept {
    return false;
}

#endif

send_batcher::send_batcher(std::unique_ptr<impl> implementation) noexcept
    : impl_(std::move(implementation)) {}

send_batcher::~send_batcher() = default;

}  // namespace chat
