#include "room.hpp"

#include "chat_server.hpp"
#include "send_batcher.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <utility>

namespace chat {

namespace asio = boost::asio;
using boost::system::error_code;

std::optional<broadcaster::event> room_seat::try_receive() {
    if (queued() == 0) {
        return std::nullopt;
    }
    auto ev = std::move(queue_[head_++]);
    queued_bytes_ -= ev.message().size();
    if (head_ == queue_.size()) {
        queue_.clear();
        head_ = 0;
    } else if (head_ >= 64 && head_ * 2 >= queue_.size()) {
        // A client that never quite catches up: what was taken goes, so that the vector
        // holds only what is queued (and the move is paid once per taken message at most).
        queue_.erase(queue_.begin(), queue_.begin() + static_cast<std::ptrdiff_t>(head_));
        head_ = 0;
    }
    return ev;
}

std::shared_ptr<room_seat::listener> room_seat::leave() noexcept {
    if (offered_to_ != nullptr) {
        offered_to_->withdraw(*this);
    }
    if (room_ != nullptr) {
        room_->unlink(*this);
    }
    queue_.clear();
    head_ = 0;
    queued_bytes_ = 0;
    if (!ended_) {
        ended_ = asio::error::operation_aborted;
    }
    return std::exchange(waiting_, nullptr);
}

void room_seat::release_memory() noexcept {
    if (queued() == 0) {
        std::vector<broadcaster::event>().swap(queue_);
        head_ = 0;
    }
}

void room_seat::push(const broadcaster::event& ev) {
    if (ended_) {
        return;
    }
    const auto size = ev.message().size();
    if (queued() >= max_messages_ || queued_bytes_ + size > max_bytes_) {
        end(broadcaster::error::subscriber_overflow);  // what is queued still goes out
        return;
    }
    if (waiting_) {
        std::exchange(waiting_, nullptr)->on_room_message({}, ev);
        return;
    }
    try {
        queue_.push_back(ev);
    } catch (const std::bad_alloc&) {
        end(make_error_code(boost::system::errc::not_enough_memory));
        return;
    }
    queued_bytes_ += size;
}

void room_seat::end(error_code ec) {
    if (room_ != nullptr) {
        room_->unlink(*this);
    }
    ended_ = ec;
    if (waiting_) {
        std::exchange(waiting_, nullptr)->on_room_message(ec, {});
    }
}

room::room(broadcaster::broadcast& broadcast, std::size_t max_messages, std::size_t max_bytes)
    : broadcast_(broadcast),
      max_messages_(max_messages),
      max_bytes_(max_bytes),
      subscribed_(broadcast.get_executor()) {
    subscribed_.expires_at(asio::steady_timer::time_point::max());
}

room::~room() {
    close();
}

asio::awaitable<error_code> room::join(room_seat& seat) {
    const auto self = shared_from_this();
    if (const auto ec = co_await subscribe()) {
        co_return ec;
    }
    link(seat);
    co_return error_code();
}

// Until the room has a live subscription: one subscribe at a time, the others wait.
asio::awaitable<error_code> room::subscribe() {
    const auto self = shared_from_this();
    while (!live_) {
        if (closed_) {
            co_return asio::error::operation_aborted;
        }
        if (subscribing_) {
            co_await subscribed_.async_wait(asio::as_tuple(asio::use_awaitable));
            continue;
        }
        subscribing_ = true;
        auto [ec, sub] = co_await broadcast_.async_subscribe(
            room_channel,
            broadcaster::subscribe_options(max_messages_, broadcaster::overflow_policy::close,
                                           max_bytes_),
            asio::as_tuple(asio::use_awaitable));
        subscribing_ = false;
        subscribed_.cancel();  // the other joins look again
        if (ec) {
            co_return ec;  // the others try for themselves
        }
        if (closed_) {
            co_return asio::error::operation_aborted;
        }
        subscriber_ = std::move(sub);
        last_fanned_out_ = broadcaster::event();
        live_ = true;
        receive_next();
    }
    co_return error_code();
}

void room::link(room_seat& seat) noexcept {
    seat.room_ = this;
    seat.previous_ = nullptr;
    seat.next_ = seats_;
    if (seats_ != nullptr) {
        seats_->previous_ = &seat;
    }
    seats_ = &seat;
}

void room::offer(room_seat& seat, room_seat::listener& by, broadcaster::event last_sent) {
    if (seat.offered_to_ == nullptr) {
        offers_.push_back(&seat);
        seat.offered_to_ = this;
    }
    seat.offered_by_ = &by;
    seat.offered_after_ = std::move(last_sent);
    if (!live_ && !subscribing_ && !closed_) {
        // Failing, it is tried again at the client's next offer.
        asio::co_spawn(subscribed_.get_executor(), subscribe(), asio::detached);
    }
}

void room::withdraw(room_seat& seat) noexcept {
    if (seat.offered_to_ != this) {
        return;
    }
    std::erase(offers_, &seat);
    seat.offered_to_ = nullptr;
    seat.offered_by_ = nullptr;
    seat.offered_after_ = broadcaster::event();
}

// Seats the offers made after the message at `position`: the fan-out is there too.
void room::seat_offers_after(std::string_view position) {
    if (position.empty()) {
        return;  // a backend without positions: the two cannot be matched
    }
    for (std::size_t i = 0; i < offers_.size();) {
        auto& seat = *offers_[i];
        if (seat.offered_after_.position() != position) {
            ++i;
            continue;
        }
        auto& by = *seat.offered_by_;
        withdraw(seat);
        link(seat);
        by.on_room_seated();
    }
}

void room::close() noexcept {
    closed_ = true;
    subscribed_.cancel();
    subscriber_.unsubscribe();
    while (!offers_.empty()) {
        withdraw(*offers_.back());
    }
    while (seats_ != nullptr) {
        auto& seat = *seats_;
        unlink(seat);
        seat.ended_ = asio::error::operation_aborted;
        seat.waiting_.reset();  // may destroy that client's session (not the seat's list)
    }
}

void room::receive_next() {
    subscriber_.async_receive([self = shared_from_this()](error_code ec, broadcaster::event ev) {
        self->on_received(ec, std::move(ev));
    });
}

void room::on_received(error_code ec, broadcaster::event ev) {
    if (ec) {
        // Ended (the broadcast disconnected, the room fell behind): the seats end with
        // it, and the next join subscribes again. Falling behind is the server's doing,
        // not its clients': they are not told they were too slow.
        live_ = false;
        subscriber_ = broadcaster::subscriber();
        end_seats(ec == broadcaster::error::subscriber_overflow
                      ? make_error_code(boost::system::errc::no_buffer_space)
                      : ec);
        return;
    }
    fan_out(ev);
    // And everything queued meanwhile (what the clients sent in one turn of the
    // server), a batch under one lock at a time.
    while (!closed_ && subscriber_.try_receive_some(batch_, max_batch) > 0) {
        for (const auto& next : batch_) {
            fan_out(next);
        }
        batch_.clear();
    }
    batch_.clear();
    if (!closed_) {
        receive_next();
    }
}

void room::fan_out(const broadcaster::event& ev) {
    // The sends the writers make for this message go to the kernel together.
    const send_batcher::round sends;
    // An offer after the message before this one: the client has not sent this one yet
    // (its subscriber's wake-up comes after the room's), so its seat gets it.
    if (!offers_.empty() && last_fanned_out_) {
        seat_offers_after(last_fanned_out_.position());
    }
    // A seat's listener may make that seat leave, never another.
    for (auto* seat = seats_; seat != nullptr;) {
        auto* next = seat->next_;
        seat->push(ev);
        seat = next;
    }
    // An offer after this very message: the client sent it on its own already.
    if (!offers_.empty()) {
        seat_offers_after(ev.position());
    }
    last_fanned_out_ = ev;
}

void room::end_seats(error_code ec) {
    while (seats_ != nullptr) {
        seats_->end(ec);  // unlinks it first
    }
}

void room::unlink(room_seat& seat) noexcept {
    (seat.previous_ != nullptr ? seat.previous_->next_ : seats_) = seat.next_;
    if (seat.next_ != nullptr) {
        seat.next_->previous_ = seat.previous_;
    }
    seat.previous_ = seat.next_ = nullptr;
    seat.room_ = nullptr;
}

}  // namespace chat
