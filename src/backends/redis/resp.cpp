#include "resp.hpp"

#include <broadcaster/error.hpp>

#include <new>
#include <vector>

namespace broadcaster::detail {

void append_command(std::string& out, std::initializer_list<std::string_view> args) {
    constexpr std::size_t max_args = 4;
    const char* argv[max_args];
    std::size_t lengths[max_args];
    std::size_t argc = 0;
    for (const auto& arg : args) {
        argv[argc] = arg.data();
        lengths[argc] = arg.size();
        ++argc;
    }
    char* command = nullptr;
    const int length = redisFormatCommandArgv(&command, static_cast<int>(argc), argv, lengths);
    if (length < 0) {
        throw std::bad_alloc();
    }
    out.append(command, static_cast<std::size_t>(length));
    redisFreeCommand(command);
}

resp_reader::resp_reader() : reader_(redisReaderCreate()) {
    if (!reader_) {
        throw std::bad_alloc();
    }
    // Keep the input buffer however large it grew; freeing it after each big payload
    // would churn the allocator under a steady stream of large messages.
    reader_->maxbuf = 0;
}

resp_reader::~resp_reader() {
    redisReaderFree(reader_);
}

void resp_reader::feed(const char* data, std::size_t size) {
    if (redisReaderFeed(reader_, data, size) != REDIS_OK) {
        throw boost::system::system_error(error::protocol_error, "redis: cannot buffer reply");
    }
}

reply_ptr resp_reader::next() {
    void* reply = nullptr;
    if (redisReaderGetReply(reader_, &reply) != REDIS_OK) {
        throw boost::system::system_error(error::protocol_error,
                                          std::string("redis: ") + reader_->errstr);
    }
    return reply_ptr(static_cast<redisReply*>(reply));
}

}  // namespace broadcaster::detail
