#pragma once

#include <broadcaster/utf8.hpp>

namespace broadcaster::detail {

using broadcaster::is_valid_utf8;

}  // namespace broadcaster::detail
