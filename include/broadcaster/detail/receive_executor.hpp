#pragma once

/// @file
/// Implementation detail of `subscriber::async_receive`; not part of the API.

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/associated_executor.hpp>

#include <type_traits>

namespace broadcaster::detail {

// Where a receive completes, found before its handler is type-erased: completing
// through an `any_io_executor` avoids a second layer of type erasure on every wake-up.
struct receive_executor {
    // The handler's associated executor, when it has one that `any_io_executor` holds.
    boost::asio::any_io_executor own;
    // The handler has no associated executor: it completes on the broadcast's.
    bool none = false;
};

template <typename Handler>
receive_executor receive_executor_of(const Handler& handler) {
    struct no_executor {};
    using executor = boost::asio::associated_executor_t<Handler, no_executor>;
    if constexpr (std::is_same_v<executor, no_executor>) {
        return {{}, true};
    } else if constexpr (std::is_constructible_v<boost::asio::any_io_executor, executor>) {
        return {boost::asio::get_associated_executor(handler), false};
    } else {
        return {};  // completes through the type-erased handler's executor
    }
}

}  // namespace broadcaster::detail
