#include "completion_blocks.hpp"

#include <new>

namespace broadcaster::detail::completion_blocks {
namespace {

// The calling thread's free blocks, a list threaded through the blocks themselves.
// Trivially destructible, so that it stays usable while the thread ends: for the main
// thread, static objects (an io_context with completions still queued) are destroyed
// after its thread_local ones.
struct free_block {
    free_block* next;
};
struct free_list {
    free_block* head = nullptr;
    std::size_t size = 0;
    bool closed = false;  // the thread is ending: keep nothing more
};
thread_local free_list blocks;

// Gives the thread's blocks back when it ends.
struct free_list_reaper {
    free_list_reaper() = default;
    free_list_reaper(const free_list_reaper&) = delete;
    free_list_reaper& operator=(const free_list_reaper&) = delete;
    ~free_list_reaper() {
        blocks.closed = true;
        while (free_block* block = blocks.head) {
            blocks.head = block->next;
            ::operator delete(block);
        }
        blocks.size = 0;
    }
};

void* pop() noexcept {
    free_block* block = blocks.head;
    if (block != nullptr) {
        blocks.head = block->next;
        --blocks.size;
    }
    return block;
}

bool push(void* p) noexcept {
    if (blocks.closed || blocks.size == max_blocks) {
        return false;
    }
    thread_local free_list_reaper reaper;  // constructed with the thread's first block
    blocks.head = ::new (p) free_block{blocks.head};
    ++blocks.size;
    return true;
}

}  // namespace

void* allocate(std::size_t bytes) {
    if (!enabled || bytes > block_size) {
        return ::operator new(bytes);
    }
    if (void* block = pop()) {
        return block;
    }
    return ::operator new(block_size);
}

void deallocate(void* p, std::size_t bytes) noexcept {
    if (!enabled || bytes > block_size || !push(p)) {
        ::operator delete(p);
    }
}

std::size_t cached() {
    return blocks.size;
}

}  // namespace broadcaster::detail::completion_blocks
