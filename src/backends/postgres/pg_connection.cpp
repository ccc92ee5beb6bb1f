#include "pg_connection.hpp"

#include <broadcaster/error.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <limits>

namespace broadcaster::detail {

namespace asio = boost::asio;
using asio::use_awaitable;
using boost::system::error_code;
using boost::system::system_error;

namespace {

// libpq's messages end with a newline; error messages are one line.
std::string first_line(const char* message) {
    std::string text = message ? message : "";
    const auto newline = text.find('\n');
    return newline == std::string::npos ? text : text.substr(0, newline);
}

bool mentions(const std::string& message, const char* word) {
    return message.find(word) != std::string::npos;
}

// What a failed connect means, from libpq's reason. The server's own refusals start
// with "FATAL": a password or role it rejects, or a database it does not have.
// Everything else (not resolved, refused, the server starting up or full) is a server
// not reached yet.
error connect_error(const std::string& reason) {
    if (mentions(reason, "password") || mentions(reason, "authentication") ||
        (mentions(reason, "role") && mentions(reason, "does not exist"))) {
        return error::authentication_failed;
    }
    if (mentions(reason, "FATAL") && mentions(reason, "does not exist")) {
        return error::broker_error;
    }
    return error::unreachable;
}

}  // namespace

pg_connection::pg_connection(asio::any_io_executor executor, std::string conninfo,
                             std::chrono::milliseconds connect_timeout, std::string redacted_url)
    : executor_(std::move(executor)),
      conninfo_(std::move(conninfo)),
      connect_timeout_(connect_timeout),
      redacted_url_(std::move(redacted_url)),
      socket_(executor_) {}

pg_connection::~pg_connection() {
    close();
}

void pg_connection::close() noexcept {
    if (socket_.is_open()) {
        error_code ignored;
        socket_.cancel(ignored);
        socket_.release();  // libpq owns the socket
    }
    if (conn_) {
        libpq().PQfinish(conn_);
        conn_ = nullptr;
    }
}

void pg_connection::watch_socket() {
    const int fd = libpq().PQsocket(conn_);
    if (socket_.is_open() && socket_.native_handle() == fd) {
        return;
    }
    if (socket_.is_open()) {
        socket_.release();
    }
    if (fd >= 0) {
        socket_.assign(fd);
    }
}

void pg_connection::fail_connection(const std::string& what, broadcaster::error code) {
    const auto reason = first_line(libpq().PQerrorMessage(conn_));
    throw system_error(code, "postgres: " + what + ": " + reason);
}

asio::awaitable<void> pg_connection::open() {
    conn_ = libpq().PQconnectStart(conninfo_.c_str());
    if (!conn_) {
        throw std::bad_alloc();
    }
    if (libpq().PQstatus(conn_) == CONNECTION_BAD) {
        fail_connection("cannot connect to " + redacted_url_, error::unreachable);
    }
    // Notices (e.g. "identifier will be truncated") are not errors; keep them quiet.
    libpq().PQsetNoticeProcessor(
        conn_, [](void*, const char*) {}, nullptr);
    asio::steady_timer deadline(executor_, connect_timeout_);
    bool expired = false;
    deadline.async_wait([this, &expired](error_code ec) {
        if (!ec) {
            expired = true;
            error_code ignored;
            socket_.cancel(ignored);
        }
    });
    auto poll = PGRES_POLLING_WRITING;
    while (poll != PGRES_POLLING_OK) {
        if (poll == PGRES_POLLING_FAILED) {
            const auto reason = first_line(libpq().PQerrorMessage(conn_));
            throw system_error(connect_error(reason), "postgres: " + reason);
        }
        watch_socket();  // the socket may change between steps
        auto [ec] = co_await socket_.async_wait(poll == PGRES_POLLING_READING
                                                    ? asio::posix::stream_descriptor::wait_read
                                                    : asio::posix::stream_descriptor::wait_write,
                                                asio::as_tuple(use_awaitable));
        if (expired) {
            throw system_error(error::unreachable, "postgres: connecting to " + redacted_url_ +
                                                       " took longer than the connect timeout");
        }
        if (ec) {
            throw system_error(error::unreachable,
                               "postgres: cannot reach " + redacted_url_ + ": " + ec.message());
        }
        poll = libpq().PQconnectPoll(conn_);
    }
    deadline.cancel();
    watch_socket();
    if (libpq().PQsetnonblocking(conn_, 1) != 0) {
        fail_connection("cannot switch to non-blocking mode", error::unreachable);
    }
}

asio::awaitable<void> pg_connection::flush() {
    for (;;) {
        const int rc = libpq().PQflush(conn_);
        if (rc == 0) {
            co_return;
        }
        if (rc < 0) {
            fail_connection("cannot send");
        }
        co_await socket_.async_wait(asio::posix::stream_descriptor::wait_write, use_awaitable);
    }
}

void pg_connection::consume_input() {
    if (!libpq().PQconsumeInput(conn_)) {
        fail_connection("connection lost");
    }
    while (PGnotify* notify = libpq().PQnotifies(conn_)) {
        notifications_.push_back({notify->relname, notify->extra});
        libpq().PQfreemem(notify);
    }
}

void pg_connection::send_query(const char* sql, const std::vector<pg_param>& params,
                               bool binary_result, bool prepared) {
    std::vector<const char*> values;
    std::vector<int> lengths;
    std::vector<int> formats;
    for (const auto& p : params) {
        // libpq takes lengths as int; the backend refuses such messages before, this is
        // the last line against a silent overflow.
        if (p.value.size() > static_cast<std::size_t>(std::numeric_limits<int>::max())) {
            throw system_error(
                broadcaster::error::payload_too_large,
                "postgres: a parameter of " + std::to_string(p.value.size()) + " bytes");
        }
        values.push_back(p.value.data());
        lengths.push_back(static_cast<int>(p.value.size()));
        formats.push_back(p.binary ? 1 : 0);
    }
    const int sent = prepared
                         ? libpq().PQsendQueryPrepared(conn_, sql, static_cast<int>(params.size()),
                                                       values.data(), lengths.data(),
                                                       formats.data(), binary_result ? 1 : 0)
                         : libpq().PQsendQueryParams(conn_, sql, static_cast<int>(params.size()),
                                                     nullptr, values.data(), lengths.data(),
                                                     formats.data(), binary_result ? 1 : 0);
    if (!sent) {
        fail_connection("cannot send a query");
    }
}

asio::awaitable<pg_result> pg_connection::next_result() {
    while (libpq().PQisBusy(conn_)) {
        co_await socket_.async_wait(asio::posix::stream_descriptor::wait_read, use_awaitable);
        consume_input();
    }
    co_return pg_result(libpq().PQgetResult(conn_));
}

asio::awaitable<pg_result> pg_connection::exec(std::string sql, std::vector<pg_param> params,
                                               bool binary_result) {
    send_query(sql.c_str(), params, binary_result);
    co_return co_await read_results();
}

asio::awaitable<void> pg_connection::prepare(std::string name, std::string sql) {
    if (!libpq().PQsendPrepare(conn_, name.c_str(), sql.c_str(), 0, nullptr)) {
        fail_connection("cannot send a query");
    }
    co_await read_results();
}

asio::awaitable<pg_result> pg_connection::read_results() {
    co_await flush();
    pg_result last;
    std::string error;
    for (;;) {
        pg_result result = co_await next_result();
        if (!result) {
            break;
        }
        const auto status = libpq().PQresultStatus(result.get());
        if (status == PGRES_FATAL_ERROR || status == PGRES_BAD_RESPONSE) {
            if (error.empty()) {
                error = first_line(libpq().PQresultErrorMessage(result.get()));
            }
        }
        last = std::move(result);
    }
    consume_input();  // notifications that came with the results
    if (!error.empty()) {
        throw system_error(broadcaster::error::broker_error, "postgres: " + error);
    }
    co_return last;
}

asio::awaitable<void> pg_connection::exec_transaction(
    std::string sql, std::vector<std::vector<pg_param>> statements) {
    std::vector<pg_statement> all;
    all.reserve(statements.size());
    for (auto& params : statements) {
        all.push_back({sql, std::move(params)});
    }
    co_await exec_transaction(std::move(all));
}

asio::awaitable<void> pg_connection::exec_transaction(std::vector<pg_statement> statements) {
    if (!libpq().PQenterPipelineMode(conn_)) {
        fail_connection("cannot enter pipeline mode");
    }
    send_query("BEGIN ISOLATION LEVEL READ COMMITTED", {}, false);
    for (const auto& statement : statements) {
        send_query(statement.sql.c_str(), statement.params, false, statement.prepared);
    }
    send_query("COMMIT", {}, false);
    if (!libpq().PQpipelineSync(conn_)) {
        fail_connection("cannot send a pipeline");
    }
    co_await flush();
    // Each statement's results end with a null; the sync ends the pipeline. A failed
    // statement aborts the rest of the transaction.
    std::string error;
    for (;;) {
        pg_result result = co_await next_result();
        if (!result) {
            continue;
        }
        const auto status = libpq().PQresultStatus(result.get());
        if (status == PGRES_PIPELINE_SYNC) {
            break;
        }
        if (status == PGRES_FATAL_ERROR && error.empty()) {
            error = first_line(libpq().PQresultErrorMessage(result.get()));
        }
    }
    libpq().PQexitPipelineMode(conn_);
    consume_input();
    if (!error.empty()) {
        throw system_error(broadcaster::error::broker_error, "postgres: " + error);
    }
}

asio::awaitable<void> pg_connection::wait_for_input() {
    auto [ec] = co_await socket_.async_wait(asio::posix::stream_descriptor::wait_read,
                                            asio::as_tuple(use_awaitable));
    if (ec == asio::error::operation_aborted) {
        co_return;  // cancel_wait: there is a command to run
    }
    if (ec) {
        throw system_error(ec);
    }
    consume_input();
}

void pg_connection::cancel_wait() noexcept {
    error_code ignored;
    socket_.cancel(ignored);
}

std::vector<pg_notification> pg_connection::take_notifications() {
    return std::exchange(notifications_, {});
}

std::string pg_connection::quote_identifier(const std::string& name) const {
    char* quoted = libpq().PQescapeIdentifier(conn_, name.data(), name.size());
    if (!quoted) {
        throw system_error(broadcaster::error::invalid_channel,
                           "postgres: " + first_line(libpq().PQerrorMessage(conn_)));
    }
    std::string out(quoted);
    libpq().PQfreemem(quoted);
    return out;
}

}  // namespace broadcaster::detail
