#pragma once

// JetStream history for nats:// (`?jetstream=STREAM`): the blocking requests, run on
// the blocking_service's threads, never on the strand (their replies are read there).
// Each takes a JetStream context of its own (made on the strand: it holds a reference
// to the connection, so a connection destroyed meanwhile only fails the requests).

#include "nats_api.hpp"
#include "nats_config.hpp"

#include <boost/system/error_code.hpp>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace broadcaster::detail {

struct js_context_deleter {
    void operator()(jsCtx* js) const { natsc().jsCtx_Destroy(js); }
};
using js_context = std::unique_ptr<jsCtx, js_context_deleter>;

// A JetStream context on `nc`; null if nats.c cannot make one. Does not block.
js_context make_js_context(natsConnection* nc);

// Makes sure the stream exists: made if missing (subjects `broadcaster.STREAM.>`,
// republished to `broadcaster-live.STREAM.>`, `history` messages per subject, file
// storage); one that exists must store and republish those subjects, else
// error::broker_error.
boost::system::error_code ensure_stream(jsCtx* js, const nats_config& config);

struct js_message {
    std::uint64_t seq = 0;
    std::string data;
};

struct js_read {
    boost::system::error_code ec;
    // history_gap: the messages still kept after the position follow anyway.
    std::vector<js_message> messages;
};

// The messages of `channel` the stream keeps after `after` (none: all of them, from the
// oldest), oldest first: the most recent `limit` of them (0: all); after a position, at
// most the first `limit` (a bounded read: more than `limit` is what the caller asked). `after` no
// longer kept: error::history_gap (with what is kept); not a position of `channel`, or later than
// anything the stream had: error::invalid_position.
js_read read_history(jsCtx* js, const nats_config& config, const std::string& channel,
                     std::optional<std::uint64_t> after, std::size_t limit);

// The stream sequence of the newest message of `channel` the stream keeps (0: none).
struct js_last {
    boost::system::error_code ec;
    std::uint64_t seq = 0;
};
js_last last_sequence(jsCtx* js, const nats_config& config, const std::string& channel);

}  // namespace broadcaster::detail
