#pragma once

// The room's fan-out: one subscription of the room for all the clients that join it
// live, each with a seat holding its send queue.
//
// A client that subscribed on its own would cost, for every message, a push into its
// subscriber's queue under a lock and a handler posted to wake its writer. Here the
// room's one subscriber receives each message once, and hands it to every seat in one
// pass: a seat queues it, or, when the client's writer waits, gives it to the writer at
// once, which writes it to the socket there and then. The seats and the room run on one
// thread: the server's only one (with --threads above 1 each client subscribes on its
// own, as before).
//
// A client that asks for history subscribes on its own, which gives it the history
// first, then live messages. Once it has sent everything its subscriber had, it offers
// to move to the room; the room seats it when its fan-out is at the same message (the
// same position), so that the client's next message is the room's next: no gap, no
// duplicate. On a backend without positions, or while the two never meet, the client
// stays on its own subscriber.

#include <broadcaster/broadcaster.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>

#include <cstddef>
#include <memory>
#include <optional>
#include <vector>

namespace chat {

class room;

// A client's place in the room: its send queue, bounded in messages and bytes as a
// subscriber's would be. Used on the room's thread only.
class room_seat {
  public:
    // Who waits for the seat's next message.
    class listener {
      public:
        virtual ~listener() = default;
        // Called by the room's fan-out: a message, or (with an empty event) the error
        // that ended the seat: its queue overflowed (broadcaster::error::
        // subscriber_overflow) or the room's subscription ended.
        virtual void on_room_message(boost::system::error_code ec, broadcaster::event ev) = 0;
        // Called by the room's fan-out: the seat offered (room::offer) is in the room
        // now; its next message is the one after the offer's.
        virtual void on_room_seated() = 0;
    };

    room_seat(std::size_t max_messages, std::size_t max_bytes) noexcept
        : max_messages_(max_messages), max_bytes_(max_bytes) {}
    room_seat(const room_seat&) = delete;
    room_seat& operator=(const room_seat&) = delete;
    ~room_seat() { leave(); }

    std::size_t queued() const noexcept { return queue_.size() - head_; }
    // The next queued message, if any.
    std::optional<broadcaster::event> try_receive();
    // Why the seat ended, once its queue is empty (then no message comes any more).
    boost::system::error_code error() const noexcept {
        return queued() == 0 ? ended_ : boost::system::error_code();
    }
    // The next message goes to `waiting` (which the seat keeps alive until then).
    // Only with nothing queued and the seat not ended.
    void wait(std::shared_ptr<listener> waiting) noexcept { waiting_ = std::move(waiting); }
    // Leaves the room: nothing more is queued, the queue is emptied. Returns the
    // listener that was waiting, if one was (it is not called).
    std::shared_ptr<listener> leave() noexcept;
    // Frees the queue's memory when nothing is queued: for a client idle a long time.
    void release_memory() noexcept;

  private:
    friend class room;
    // From the room's fan-out.
    void push(const broadcaster::event& ev);
    void end(boost::system::error_code ec);

    room* room_ = nullptr;  // null once it left (or the room is gone)
    // Offered to a room (room::offer), not in it yet: by whom, after which message.
    room* offered_to_ = nullptr;
    listener* offered_by_ = nullptr;
    broadcaster::event offered_after_;
    room_seat* previous_ = nullptr;
    room_seat* next_ = nullptr;
    // The queue: queue_[head_] onwards (a vector: an idle client's holds no memory).
    std::vector<broadcaster::event> queue_;
    std::size_t head_ = 0;
    std::size_t queued_bytes_ = 0;
    std::size_t max_messages_;
    std::size_t max_bytes_;
    boost::system::error_code ended_;
    std::shared_ptr<listener> waiting_;
};

class room : public std::enable_shared_from_this<room> {
  public:
    // The room's subscription holds what the server's clients publish in one turn of
    // its thread (the fan-out takes it all in the next): at most `max_messages` and
    // `max_bytes`, past which every seat ends.
    room(broadcaster::broadcast& broadcast, std::size_t max_messages, std::size_t max_bytes);
    room(const room&) = delete;
    room& operator=(const room&) = delete;
    ~room();

    // Seats `seat` once the room's subscription is confirmed (subscribing first when
    // it has none): everything published after that reaches the seat. Runs on the
    // broadcast's executor, which must be the one thread running the server.
    boost::asio::awaitable<boost::system::error_code> join(room_seat& seat);
    // A client on its own subscriber has sent everything up to `last_sent` and waits:
    // `seat` is seated, and `by.on_room_seated()` called, when the fan-out reaches
    // that message (subscribing first if the room has no subscription). Until then,
    // or withdraw(), the room keeps a pointer to `by`.
    void offer(room_seat& seat, room_seat::listener& by, broadcaster::event last_sent);
    // The client is about to send more on its own: the offer no longer holds.
    void withdraw(room_seat& seat) noexcept;
    // Ends the subscription; the seats leave without a word (the server is going away,
    // and its clients with it).
    void close() noexcept;

  private:
    friend class room_seat;
    boost::asio::awaitable<boost::system::error_code> subscribe();
    void receive_next();
    void seat_offers_after(std::string_view position);
    void link(room_seat& seat) noexcept;
    void on_received(boost::system::error_code ec, broadcaster::event ev);
    void fan_out(const broadcaster::event& ev);
    void end_seats(boost::system::error_code ec);
    void unlink(room_seat& seat) noexcept;

    broadcaster::broadcast& broadcast_;
    const std::size_t max_messages_;
    const std::size_t max_bytes_;
    // Messages taken from the subscriber under one lock.
    static constexpr std::size_t max_batch = 64;

    broadcaster::subscriber subscriber_;
    bool live_ = false;  // subscribed, and the subscription has not ended
    bool subscribing_ = false;
    bool closed_ = false;
    // Joins that wait for another's subscribe wait on it; it never expires.
    boost::asio::steady_timer subscribed_;
    room_seat* seats_ = nullptr;  // the first of the list
    std::vector<room_seat*> offers_;
    broadcaster::event last_fanned_out_;  // of this subscription
    std::vector<broadcaster::event> batch_;
};

}  // namespace chat
