#pragma once

#include "libpq_api.hpp"

#include <broadcaster/error.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/system/error_code.hpp>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace broadcaster::detail {

struct pg_result_deleter {
    void operator()(PGresult* result) const noexcept { libpq().PQclear(result); }
};
using pg_result = std::unique_ptr<PGresult, pg_result_deleter>;

// A notification as libpq received it.
struct pg_notification {
    std::string channel;
    std::string payload;
};

// A statement parameter: text, or binary bytes (e.g. for bytea).
struct pg_param {
    std::string value;
    bool binary = false;
};

// One statement of a transaction: SQL text, or the name of a statement prepared on
// the connection (`pg_connection::prepare`) when `prepared` is set.
struct pg_statement {
    std::string sql;
    std::vector<pg_param> params;
    bool prepared = false;
};

// One libpq connection driven by Asio: libpq's non-blocking API, its socket watched by
// an Asio descriptor. Used on one strand only; no blocking call anywhere.
class pg_connection {
  public:
    pg_connection(boost::asio::any_io_executor executor, std::string conninfo,
                  std::chrono::milliseconds connect_timeout, std::string redacted_url);
    ~pg_connection();
    pg_connection(const pg_connection&) = delete;
    pg_connection& operator=(const pg_connection&) = delete;

    // PQconnectStart/PQconnectPoll within the timeout. Throws system_error with
    // libpq's reason: error::authentication_failed (password, unknown role),
    // error::broker_error (the server refused otherwise, e.g. no such database), or
    // error::unreachable (not resolved, refused, or the connect timeout passed).
    boost::asio::awaitable<void> open();

    // Runs one statement and returns its last result (`binary_result`: columns in
    // binary). Throws system_error(error::broker_error) with the server's message, or
    // the connection's error when it is lost. Notifications that arrive meanwhile are
    // kept for `take_notifications`.
    boost::asio::awaitable<pg_result> exec(std::string sql, std::vector<pg_param> params = {},
                                           bool binary_result = false);

    // Runs `sql` once per parameter list in one transaction, all sent at once in
    // pipeline mode: one round trip and one commit for all. Throws
    // system_error(error::broker_error) if any failed (then none took effect), or the
    // connection's error when it is lost.
    boost::asio::awaitable<void> exec_transaction(std::string sql,
                                                  std::vector<std::vector<pg_param>> statements);
    // The same for different statements. The transaction is READ COMMITTED whatever the
    // server's default: each statement sees what committed before it started (after
    // the locks the statements before it took).
    boost::asio::awaitable<void> exec_transaction(std::vector<pg_statement> statements);

    // Prepares `sql` as `name` on this connection, for statements run often: Postgres
    // then plans it once, not at every execution. Throws as `exec` does.
    boost::asio::awaitable<void> prepare(std::string name, std::string sql);

    // Waits until the server sends something (or `cancel_wait` is called), then
    // reads it. Throws when the connection is lost.
    boost::asio::awaitable<void> wait_for_input();
    void cancel_wait() noexcept;

    std::vector<pg_notification> take_notifications();

    // `name` as a quoted SQL identifier.
    std::string quote_identifier(const std::string& name) const;

    void close() noexcept;

  private:
    void watch_socket();
    void send_query(const char* sql, const std::vector<pg_param>& params, bool binary_result,
                    bool prepared = false);
    // The results of what was sent, until the last; throws broker_error on a failure.
    boost::asio::awaitable<pg_result> read_results();
    // The next result once it is complete; null after a statement's last one.
    boost::asio::awaitable<pg_result> next_result();
    boost::asio::awaitable<void> flush();
    void consume_input();
    // Throws system_error(`code`) with libpq's reason: error::unreachable while
    // connecting, error::connection_lost after.
    [[noreturn]] void fail_connection(
        const std::string& what, broadcaster::error code = broadcaster::error::connection_lost);

    boost::asio::any_io_executor executor_;
    const std::string conninfo_;
    const std::chrono::milliseconds connect_timeout_;
    const std::string redacted_url_;
    PGconn* conn_ = nullptr;
    boost::asio::posix::stream_descriptor socket_;
    std::vector<pg_notification> notifications_;
};

}  // namespace broadcaster::detail
