// The room's sends in one submission (send_batcher.hpp), on real loopback sockets: what
// each socket gets, a full socket and a bad descriptor, and the write-behind stream
// inside a round (a send counts as made; a close waits for the round).

#include "send_batcher.hpp"
#include "write_behind_stream.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

namespace chat {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using boost::system::error_code;

// Connected loopback pairs: the server side sends, the client side reads.
struct socket_pair {
    tcp::socket server;
    tcp::socket client;
};

std::vector<socket_pair> connected_pairs(asio::io_context& io, int count) {
    tcp::acceptor acceptor(io, {asio::ip::address_v4::loopback(), 0});
    std::vector<socket_pair> pairs;
    for (int i = 0; i < count; ++i) {
        tcp::socket client(io);
        client.connect(acceptor.local_endpoint());
        pairs.push_back({acceptor.accept(), std::move(client)});
    }
    return pairs;
}

std::string read_exactly(tcp::socket& socket, std::size_t size) {
    std::string bytes(size, '\0');
    asio::read(socket, asio::buffer(bytes));
    return bytes;
}

struct outcome {
    std::string unsent;
    error_code ec;
    int calls = 0;
};

void record(const std::shared_ptr<void>& owner, std::string_view unsent, error_code ec) {
    auto& o = *static_cast<outcome*>(owner.get());
    o.unsent = unsent;
    o.ec = ec;
    ++o.calls;
}

// Fills `socket`'s send buffer (and its peer's receive buffer) without blocking;
// returns how many bytes that took.
std::size_t fill(tcp::socket& socket) {
    const std::string chunk(1 << 16, 'f');
    std::size_t filled = 0;
    for (ssize_t n;
         (n = ::send(socket.native_handle(), chunk.data(), chunk.size(), MSG_DONTWAIT)) > 0;) {
        filled += static_cast<std::size_t>(n);
    }
    return filled;
}

class chat_send_batcher : public ::testing::Test {
  protected:
    void SetUp() override {
        if (!send_batcher::available()) {
            GTEST_SKIP() << "io_uring is not available here: every send is made at once";
        }
    }
    asio::io_context io_;
};

TEST(chat_send_batcher_round, outside_a_round_nothing_collects) {
    EXPECT_EQ(send_batcher::collecting(), nullptr);
}

TEST_F(chat_send_batcher, a_rounds_sends_reach_their_sockets_when_it_closes) {
    auto pairs = connected_pairs(io_, 5);
    std::vector<std::shared_ptr<outcome>> outcomes;
    {
        const send_batcher::round round;
        auto* batcher = send_batcher::collecting();
        ASSERT_NE(batcher, nullptr);
        for (std::size_t i = 0; i < pairs.size(); ++i) {
            outcomes.push_back(std::make_shared<outcome>());
            batcher->add(pairs[i].server.native_handle(), "message for " + std::to_string(i),
                         outcomes.back(), &record);
        }
        EXPECT_EQ(outcomes[0]->calls, 0);  // not before the round closes
    }
    EXPECT_EQ(send_batcher::collecting(), nullptr);
    for (std::size_t i = 0; i < pairs.size(); ++i) {
        EXPECT_EQ(outcomes[i]->calls, 1);
        EXPECT_TRUE(outcomes[i]->unsent.empty());
        EXPECT_FALSE(outcomes[i]->ec);
        const auto expected = "message for " + std::to_string(i);
        EXPECT_EQ(read_exactly(pairs[i].client, expected.size()), expected);
    }
}

// More sends than one submission holds (256): several submissions, all of them sent.
TEST_F(chat_send_batcher, a_round_bigger_than_the_ring_is_sent_whole) {
    auto pairs = connected_pairs(io_, 300);
    auto counted = std::make_shared<outcome>();
    int calls = 0;
    {
        const send_batcher::round round;
        for (auto& pair : pairs) {
            send_batcher::collecting()->add(pair.server.native_handle(), "x", counted, &record);
        }
    }
    calls = counted->calls;
    EXPECT_EQ(calls, 300);
    for (auto& pair : pairs) {
        EXPECT_EQ(read_exactly(pair.client, 1), "x");
    }
}

// The same bytes for many sockets are kept once; a round of big distinct messages is
// submitted in parts. Every socket gets its own bytes either way.
TEST_F(chat_send_batcher, same_and_big_messages_reach_every_socket) {
    auto pairs = connected_pairs(io_, 40);
    auto counted = std::make_shared<outcome>();
    const auto big = [](std::size_t i) {
        return std::string(60 * 1024, static_cast<char>('a' + i % 26));
    };
    {
        const send_batcher::round round;
        for (std::size_t i = 0; i < 20; ++i) {
            send_batcher::collecting()->add(pairs[i].server.native_handle(), "same for all",
                                            counted, &record);
        }
        for (std::size_t i = 20; i < pairs.size(); ++i) {  // 1.2 MB: more than one submission
            send_batcher::collecting()->add(pairs[i].server.native_handle(), big(i), counted,
                                            &record);
        }
    }
    EXPECT_EQ(counted->calls, 40);
    for (std::size_t i = 0; i < 20; ++i) {
        EXPECT_EQ(read_exactly(pairs[i].client, 12), "same for all");
    }
    for (std::size_t i = 20; i < pairs.size(); ++i) {
        EXPECT_EQ(read_exactly(pairs[i].client, 60 * 1024), big(i));
    }
}

// A socket that takes nothing does not hold the round up: all of it comes back unsent.
TEST_F(chat_send_batcher, a_full_socket_gives_its_bytes_back_without_waiting) {
    auto pairs = connected_pairs(io_, 2);
    fill(pairs[0].server);
    auto full = std::make_shared<outcome>();
    auto fine = std::make_shared<outcome>();
    {
        const send_batcher::round round;
        send_batcher::collecting()->add(pairs[0].server.native_handle(), "waits", full, &record);
        send_batcher::collecting()->add(pairs[1].server.native_handle(), "goes", fine, &record);
    }
    EXPECT_EQ(full->unsent, "waits");
    EXPECT_FALSE(full->ec);
    EXPECT_TRUE(fine->unsent.empty());
    EXPECT_EQ(read_exactly(pairs[1].client, 4), "goes");
}

TEST_F(chat_send_batcher, a_bad_descriptor_fails_only_its_send) {
    auto pairs = connected_pairs(io_, 1);
    const int closed = ::dup(pairs[0].server.native_handle());
    ::close(closed);
    auto bad = std::make_shared<outcome>();
    auto fine = std::make_shared<outcome>();
    {
        const send_batcher::round round;
        send_batcher::collecting()->add(closed, "lost", bad, &record);
        send_batcher::collecting()->add(pairs[0].server.native_handle(), "kept", fine, &record);
    }
    EXPECT_EQ(bad->ec, boost::system::errc::bad_file_descriptor);
    EXPECT_FALSE(fine->ec);
    EXPECT_EQ(read_exactly(pairs[0].client, 4), "kept");
}

TEST_F(chat_send_batcher, a_nested_round_is_the_outer_one) {
    auto pairs = connected_pairs(io_, 1);
    auto sent = std::make_shared<outcome>();
    {
        const send_batcher::round outer;
        {
            const send_batcher::round inner;
            send_batcher::collecting()->add(pairs[0].server.native_handle(), "late", sent, &record);
        }
        EXPECT_EQ(sent->calls, 0);  // the inner one's end submits nothing
        EXPECT_NE(send_batcher::collecting(), nullptr);
    }
    EXPECT_EQ(sent->calls, 1);
    EXPECT_EQ(read_exactly(pairs[0].client, 4), "late");
}

// The write-behind stream in a round: a batch counts as made (the writer goes on), a
// close waits for the round (the descriptor cannot be reused meanwhile), and what the
// socket did not take goes out once it has room.
TEST_F(chat_send_batcher, the_stream_hands_its_batch_to_the_round) {
    auto pairs = connected_pairs(io_, 2);
    write_behind_stream sent(std::move(pairs[0].server), std::chrono::seconds(5));
    write_behind_stream closed(std::move(pairs[1].server), std::chrono::seconds(5));
    error_code ec;
    {
        const send_batcher::round round;
        sent.cork();
        sent.write_frame(0x1, "hello", ec);
        EXPECT_TRUE(sent.uncork());  // made, as far as the writer knows
        closed.cork();
        closed.write_frame(0x1, "bye", ec);
        EXPECT_TRUE(closed.uncork());
        closed.close();
        char probe = 0;  // still open: the round holds its descriptor
        EXPECT_EQ(::recv(pairs[1].client.native_handle(), &probe, 1, MSG_DONTWAIT | MSG_PEEK), -1);
    }
    EXPECT_EQ(read_exactly(pairs[0].client, 7), std::string("\x81\x05hello"));
    EXPECT_EQ(read_exactly(pairs[1].client, 5), std::string("\x81\x03"
                                                            "bye"));
    char byte = 0;  // then closed: end of input
    EXPECT_EQ(::recv(pairs[1].client.native_handle(), &byte, 1, 0), 0);
}

// A send the round reports failed (the client reset the connection) drops the client:
// the stream fails and closes its socket, which wakes its reader.
TEST_F(chat_send_batcher, a_failed_send_in_a_round_closes_the_stream) {
    auto pairs = connected_pairs(io_, 1);
    const int fd = pairs[0].server.native_handle();
    write_behind_stream stream(std::move(pairs[0].server), std::chrono::seconds(5));
    pairs[0].client.set_option(asio::socket_base::linger(true, 0));
    pairs[0].client.close();  // a reset
    error_code ec;
    for (int i = 0; i < 100 && !stream.failed(); ++i) {  // the reset arrives first
        const send_batcher::round round;
        stream.cork();
        stream.write_frame(0x1, "into the void", ec);
        stream.uncork();
    }
    EXPECT_TRUE(stream.failed());
    EXPECT_EQ(::fcntl(fd, F_GETFD), -1);  // closed
}

TEST_F(chat_send_batcher, what_a_full_socket_did_not_take_goes_out_later) {
    auto pairs = connected_pairs(io_, 1);
    auto& client = pairs[0].client;
    const auto filled = fill(pairs[0].server);  // the round's send comes back whole
    write_behind_stream stream(std::move(pairs[0].server), std::chrono::seconds(5));
    error_code ec;
    {
        const send_batcher::round round;
        stream.cork();
        stream.write_frame(0x1, "after", ec);
        stream.uncork();
    }
    EXPECT_GT(stream.backlog(), 0u);
    bool flushed = false;
    stream.async_wait_flushed([&](error_code e) {
        EXPECT_FALSE(e);
        flushed = true;
    });
    std::string received;
    std::vector<char> buffer(1 << 16);
    while (received.size() < filled + 7) {  // the reader makes room, the stream fills it
        const auto n = client.read_some(asio::buffer(buffer));
        received.append(buffer.data(), n);
        io_.restart();
        io_.poll();
    }
    for (int i = 0; i < 100 && !flushed; ++i) {
        io_.restart();
        io_.run_for(std::chrono::milliseconds(10));
    }
    EXPECT_TRUE(flushed);
    EXPECT_EQ(received.substr(filled), std::string("\x81\x05"
                                                   "after"));
}

}  // namespace
}  // namespace chat
