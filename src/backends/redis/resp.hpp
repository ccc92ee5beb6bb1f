#pragma once

// hiredis as the RESP reader and encoder; the sockets are Asio's.

#include <boost/system/error_code.hpp>

#include <hiredis/hiredis.h>

#include <initializer_list>
#include <memory>
#include <string>
#include <string_view>

namespace broadcaster::detail {

struct reply_deleter {
    void operator()(redisReply* reply) const noexcept { freeReplyObject(reply); }
};
using reply_ptr = std::unique_ptr<redisReply, reply_deleter>;

// Appends the RESP encoding of the command `args` (binary-safe) to `out`.
void append_command(std::string& out, std::initializer_list<std::string_view> args);

// The text of a string, status or error reply.
inline std::string_view reply_text(const redisReply& reply) noexcept {
    return {reply.str, reply.len};
}

// Turns bytes from the socket into replies.
class resp_reader {
  public:
    resp_reader();
    ~resp_reader();
    resp_reader(const resp_reader&) = delete;
    resp_reader& operator=(const resp_reader&) = delete;

    void feed(const char* data, std::size_t size);

    // The next complete reply, or null when more bytes are needed.
    // Throws system_error(error::protocol_error) on malformed input.
    reply_ptr next();

  private:
    redisReader* reader_;
};

}  // namespace broadcaster::detail
