// The default answers of the backend interface's optional parts.

#include <broadcaster/backend.hpp>
#include <broadcaster/error.hpp>

namespace broadcaster {

void backend::async_subscribe_pattern(std::string, completion_handler handler) {
    complete(std::move(handler), error::patterns_not_supported);
}

void backend::async_unsubscribe_pattern(std::string, completion_handler handler) {
    complete(std::move(handler), {});
}

}  // namespace broadcaster
