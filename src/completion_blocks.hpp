#pragma once

// Memory for the completions of receives. Waking a subscriber posts its handler: one
// operation per subscriber and message, and a message to a room of a thousand
// subscribers puts a thousand of them in flight at once. Asio recycles two blocks per
// thread, so all the others went to the heap and back. This cache keeps the blocks a
// thread frees, for that thread's next completions: up to `max_blocks` blocks of
// `block_size` bytes (256 KiB) per thread. With one thread, that is as many as were in
// flight together; with several, a thread that frees more than it allocates (runs
// handlers others woke) fills up to the bound.

#include <cstddef>
#include <memory>

namespace broadcaster::detail {

namespace completion_blocks {

inline constexpr std::size_t block_size = 256;
inline constexpr std::size_t max_blocks = 1024;

// Under AddressSanitizer no block is kept: a block in the list is memory ASan believes
// in use, so a use after free or a double free of a completion would go unseen. Nor
// when the program turned Asio's own recycling off.
#if defined(__SANITIZE_ADDRESS__) || defined(BOOST_ASIO_DISABLE_SMALL_BLOCK_RECYCLING)
inline constexpr bool enabled = false;
#else
inline constexpr bool enabled = true;
#endif

// A block when `bytes` fit one, else plain operator new.
void* allocate(std::size_t bytes);
// Takes back what allocate(bytes) gave, from any thread.
void deallocate(void* p, std::size_t bytes) noexcept;

// Blocks kept by the calling thread (for the tests).
std::size_t cached();

}  // namespace completion_blocks

// An allocator over completion_blocks, for Asio's operations.
template <typename T>
class completion_allocator {
  public:
    using value_type = T;

    completion_allocator() noexcept = default;
    template <typename U>
    completion_allocator(const completion_allocator<U>&) noexcept {}

    T* allocate(std::size_t n) {
        if (n > completion_blocks::block_size / sizeof(T) ||
            alignof(T) > alignof(std::max_align_t)) {
            return std::allocator<T>().allocate(n);
        }
        return static_cast<T*>(completion_blocks::allocate(n * sizeof(T)));
    }

    void deallocate(T* p, std::size_t n) noexcept {
        if (n > completion_blocks::block_size / sizeof(T) ||
            alignof(T) > alignof(std::max_align_t)) {
            std::allocator<T>().deallocate(p, n);
            return;
        }
        completion_blocks::deallocate(p, n * sizeof(T));
    }

    template <typename U>
    bool operator==(const completion_allocator<U>&) const noexcept {
        return true;
    }
};

}  // namespace broadcaster::detail
