#pragma once

/// @file
/// Everything of the broadcaster library in one include.

#include <broadcaster/backend.hpp>
#include <broadcaster/blocking_broadcast.hpp>
#include <broadcaster/broadcast.hpp>
#include <broadcaster/channel_list.hpp>
#include <broadcaster/error.hpp>
#include <broadcaster/event.hpp>
#include <broadcaster/options.hpp>
#include <broadcaster/subscriber.hpp>
#include <broadcaster/subscription.hpp>
#include <broadcaster/url.hpp>
#include <broadcaster/utf8.hpp>
