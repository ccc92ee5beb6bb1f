#pragma once

#include <broadcaster/backend.hpp>

#include <memory>
#include <utility>

namespace broadcaster::detail {

// What only the library (and its tests) may do to a backend: hand it its executor and
// sink. Private in `backend`, so an app cannot attach a backend a broadcast owns.
class backend_access {
  public:
    static void attach(backend& b, boost::asio::any_io_executor executor,
                       std::weak_ptr<backend_sink> sink) {
        b.attach(std::move(executor), std::move(sink));
    }
};

}  // namespace broadcaster::detail
