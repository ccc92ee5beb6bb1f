#pragma once

#include <broadcaster/event.hpp>

#include <cstddef>
#include <memory>
#include <utility>

namespace broadcaster::detail {

// A FIFO of events in a power-of-two circular buffer. It starts with no storage and
// grows on demand, so an idle subscriber costs nothing here; the owner bounds it.
class event_ring {
  public:
    bool empty() const noexcept { return size_ == 0; }
    std::size_t size() const noexcept { return size_; }

    void push_back(event ev) {
        if (size_ == capacity_) {
            grow();
        }
        slots_[(head_ + size_) & (capacity_ - 1)] = std::move(ev);
        ++size_;
    }

    event pop_front() noexcept {
        event ev = std::move(slots_[head_]);
        head_ = (head_ + 1) & (capacity_ - 1);
        --size_;
        return ev;
    }

    // Frees the storage once a large buffer has drained, so one burst does not pin
    // memory for the subscriber's lifetime.
    void shrink_if_idle() noexcept {
        if (size_ == 0 && capacity_ > shrink_threshold) {
            clear();
        }
    }

    void clear() noexcept {
        slots_.reset();
        capacity_ = head_ = size_ = 0;
    }

  private:
    static constexpr std::size_t initial_capacity = 4;
    static constexpr std::size_t shrink_threshold = 64;

    void grow() {
        const std::size_t capacity = capacity_ == 0 ? initial_capacity : capacity_ * 2;
        auto slots = std::make_unique<event[]>(capacity);
        for (std::size_t i = 0; i < size_; ++i) {
            slots[i] = std::move(slots_[(head_ + i) & (capacity_ - 1)]);
        }
        slots_ = std::move(slots);
        capacity_ = capacity;
        head_ = 0;
    }

    std::unique_ptr<event[]> slots_;
    std::size_t capacity_ = 0;
    std::size_t head_ = 0;
    std::size_t size_ = 0;
};

}  // namespace broadcaster::detail
