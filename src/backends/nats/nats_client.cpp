#include "nats_client.hpp"

#include "nats_delivery.hpp"

#include "../../completion.hpp"

#include <broadcaster/error.hpp>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/query.hpp>

#include <fcntl.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <random>

namespace broadcaster::detail {
namespace {

namespace asio = boost::asio;
using boost::system::error_code;

// A file descriptor closed unless released (e.g. when its posted work is dropped).
struct owned_fd {
    explicit owned_fd(int fd) : fd(fd) {}
    owned_fd(const owned_fd&) = delete;
    owned_fd& operator=(const owned_fd&) = delete;
    ~owned_fd() {
        if (fd >= 0) {
            ::close(fd);
        }
    }
    int release() { return std::exchange(fd, -1); }
    int fd;
};

// Posts `work(client)` to the strand of the link named by `closure`, if it is open.
template <typename Work>
void to_client(void* closure, Work work) {
    if (auto link = nats_link::find(nats_link::id_of(closure))) {
        link->post(std::move(work));
    }
}

// ---- nats.c's event-loop interface (called from any thread, nats.c's lock held) ----

natsStatus on_attach(void** user_data, void* loop, natsConnection*, natsSock fd) {
    *user_data = loop;
    // A duplicate for Asio: nats.c closes its socket on a loss and opens another one on
    // reconnect, and Asio must never deregister a descriptor number reused meanwhile.
    const int copy = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (copy < 0) {
        return NATS_SYS_ERROR;
    }
    auto owned = std::make_shared<owned_fd>(copy);
    to_client(loop, [owned](nats_client& c) { c.on_attached(owned->release()); });
    return NATS_OK;
}

natsStatus on_read(void* user_data, bool add) {
    to_client(user_data, [add](nats_client& c) { c.on_want_read(add); });
    return NATS_OK;
}

natsStatus on_write(void* user_data, bool add) {
    to_client(user_data, [add](nats_client& c) { c.on_want_write(add); });
    return NATS_OK;
}

natsStatus on_detach(void* user_data) {
    to_client(user_data, [](nats_client& c) { c.on_detached(); });
    return NATS_OK;
}

void on_reconnected(natsConnection*, void* closure) {
    to_client(closure, [](nats_client& c) { c.on_reconnected(); });
}

void on_closed(natsConnection*, void* closure) {
    to_client(closure, [](nats_client& c) { c.on_closed(); });
}

// On nats.c's callback thread: a subscription's pending limits were exceeded and nats.c
// began dropping its messages (reported once per such episode).
void on_nats_error(natsConnection*, natsSubscription* sub, natsStatus status, void* closure) {
    if (status != NATS_SLOW_CONSUMER || sub == nullptr) {
        return;
    }
    if (const char* subject = natsc().natsSubscription_GetSubject(sub)) {
        to_client(closure,
                  [subject = std::string(subject), id = natsc().natsSubscription_GetID(sub)](
                      nats_client& c) { c.on_messages_dropped(subject, id); });
    }
}

// On nats.c's delivery thread: copy, free, hand over. No app code runs here.
void on_nats_message(natsConnection*, natsSubscription* sub, natsMsg* msg, void* closure) {
    auto delivery = copy_delivery(sub, msg);
    natsc().natsMsg_Destroy(msg);
    if (!delivery) {
        return;  // unsubscribed meanwhile
    }
    if (auto link = nats_link::find(nats_link::id_of(closure))) {
        link->deliver(std::move(*delivery), [](nats_client& c) { c.on_deliveries(); });
    }
}

// nats.c drops what exceeds a subscription's pending limits (65536 messages or 64 MiB
// by default) while its delivery thread is behind: the bound on its memory. For the
// channels' subscriptions that stays (a drop is reported: on_messages_dropped); the marker
// and acknowledgement subscriptions carry no more than the operations in flight.
natsStatus unlimited_pending(natsSubscription* sub) {
    return natsc().natsSubscription_SetPendingLimits(sub, -1, -1);
}

// What nats.c gives our subscriptions waits for the strand in the link's queue; past
// these, the strand stops reading the socket until it has caught up (the server holds
// the rest, up to its own slow-consumer limit, which closes the connection: a loss the
// state observer reports). So memory stays bounded when the app is slower than NATS.
constexpr std::size_t max_queued_messages = 16384;
constexpr std::size_t max_queued_bytes = 8 << 20;

// Exponential backoff with jitter between passes over the server list.
int64_t reconnect_delay(natsConnection*, int attempts, void* closure) {
    auto link = nats_link::find(nats_link::id_of(closure));
    if (!link) {
        return 1000;
    }
    const auto min = link->backoff_min().count();
    const auto max = link->backoff_max().count();
    long long ceiling = min;
    for (int i = 1; i < attempts && ceiling < max; ++i) {
        ceiling *= 2;
    }
    ceiling = std::min<long long>(ceiling, max);
    thread_local std::minstd_rand random(std::random_device{}());
    std::uniform_int_distribution<long long> pick(ceiling / 2, ceiling);
    return pick(random);
}

error_code connect_error(natsStatus s) {
    switch (s) {
        case NATS_CONNECTION_AUTH_FAILED:
        case NATS_NOT_PERMITTED:
            return error::authentication_failed;
        case NATS_PROTOCOL_ERROR:
            return error::protocol_error;
        default:
            return error::unreachable;
    }
}

error_code operation_error(natsStatus s) {
    switch (s) {
        case NATS_MAX_PAYLOAD:
            return error::payload_too_large;
        case NATS_INVALID_SUBJECT:
            return error::invalid_channel;
        case NATS_CONNECTION_CLOSED:
        case NATS_CONNECTION_DISCONNECTED:
        case NATS_INSUFFICIENT_BUFFER:
            return error::connection_lost;
        default:
            return error::broker_error;
    }
}

struct options_deleter {
    void operator()(natsOptions* o) const { natsc().natsOptions_Destroy(o); }
};
using options_ptr = std::unique_ptr<natsOptions, options_deleter>;

// nats.c's options for `config`; the callbacks' closure is `link`'s id.
options_ptr make_options(const nats_config& config, const nats_link& link) {
    natsOptions* raw = nullptr;
    if (natsc().natsOptions_Create(&raw) != NATS_OK) {
        throw boost::system::system_error(error::broker_error, "cannot create NATS options");
    }
    options_ptr opts(raw);
    std::vector<const char*> servers;
    for (const auto& s : config.servers) {
        servers.push_back(s.c_str());
    }
    void* closure = link.closure();
    natsStatus s = natsc().natsOptions_SetServers(opts.get(), servers.data(),
                                                  static_cast<int>(servers.size()));
    const auto set = [&s](natsStatus next) {
        if (s == NATS_OK) {
            s = next;
        }
    };
    if (!config.user.empty()) {
        set(natsc().natsOptions_SetUserInfo(opts.get(), config.user.c_str(),
                                            config.password.c_str()));
    }
    if (!config.token.empty()) {
        set(natsc().natsOptions_SetToken(opts.get(), config.token.c_str()));
    }
    set(natsc().natsOptions_SetName(opts.get(), config.client_name.c_str()));
    set(natsc().natsOptions_SetTimeout(opts.get(),
                                       std::max<int64_t>(1, config.connect_timeout.count())));
    set(natsc().natsOptions_SetPingInterval(opts.get(), config.ping_interval.count()));
    set(natsc().natsOptions_SetMaxPingsOut(opts.get(), config.max_pings_out));
    set(natsc().natsOptions_SetAllowReconnect(opts.get(), true));
    set(natsc().natsOptions_SetMaxReconnect(opts.get(), -1));
    set(natsc().natsOptions_SetCustomReconnectDelay(opts.get(), reconnect_delay, closure));
    // No flusher thread: every write request reaches the strand at once.
    set(natsc().natsOptions_SetSendAsap(opts.get(), true));
    set(natsc().natsOptions_SetReconnectedCB(opts.get(), on_reconnected, closure));
    set(natsc().natsOptions_SetClosedCB(opts.get(), on_closed, closure));
    set(natsc().natsOptions_SetErrorHandler(opts.get(), on_nats_error, closure));
    // One delivery thread for every subscription (not one thread per subscription).
    set(natsc().natsOptions_UseGlobalMessageDelivery(opts.get(), true));
    set(natsc().natsOptions_SetEventLoop(opts.get(), closure, on_attach, on_read, on_write,
                                         on_detach));
    if (config.tls) {
        set(natsc().natsOptions_SetSecure(opts.get(), true));
        if (!config.tls_ca_file.empty()) {
            set(natsc().natsOptions_LoadCATrustedCertificates(opts.get(),
                                                              config.tls_ca_file.c_str()));
        }
        if (!config.tls_verify) {
            set(natsc().natsOptions_SkipServerVerification(opts.get(), true));
        }
        if (!config.tls_server_name.empty()) {
            set(natsc().natsOptions_SetExpectedHostname(opts.get(),
                                                        config.tls_server_name.c_str()));
        }
    }
    if (s != NATS_OK) {
        throw boost::system::system_error(
            error::invalid_url, "'" + config.redacted_url + "': NATS refused the settings (" +
                                    std::string(natsc().natsStatus_GetText(s)) + ")");
    }
    return opts;
}

// Destroys nats.c objects (blocking: joins nats.c's reconnect thread).
void destroy_connection(natsConnection* nc, std::vector<natsSubscription*> subs) {
    for (auto* sub : subs) {
        natsc().natsSubscription_Destroy(sub);
    }
    natsc().natsConnection_Destroy(nc);
}

}  // namespace

nats_client::nats_client(asio::any_io_executor strand, nats_config config,
                         std::weak_ptr<backend_sink> sink)
    : strand_(std::move(strand)),
      config_(std::move(config)),
      sink_(std::move(sink)),
      blocking_(
          asio::use_service<blocking_service>(asio::query(strand_, asio::execution::context))),
      socket_(strand_),
      expiry_(strand_) {}

nats_client::~nats_client() {
    if (!nc_) {
        return;
    }
    link_->close();
    std::vector<natsSubscription*> subs;
    if (marker_sub_) {
        subs.push_back(marker_sub_);
    }
    if (ack_sub_) {
        subs.push_back(ack_sub_);
    }
    for (auto& [subject, sub] : subs_) {
        subs.push_back(sub.handle);
    }
    if (link_->context_gone()) {
        destroy_connection(nc_, std::move(subs));  // no io_context left to run it
    } else {
        blocking_.post([nc = nc_, subs = std::move(subs)]() mutable {
            destroy_connection(nc, std::move(subs));
        });
    }
}

// ---- connection --------------------------------------------------------------------

void nats_client::connect(completion_handler handler) {
    link_ =
        nats_link::make(strand_, weak_from_this(), config_.reconnect_min, config_.reconnect_max);
    options_ptr opts;
    try {
        opts = make_options(config_, *link_);
    } catch (const boost::system::system_error& e) {
        stop();
        complete(std::move(handler), e.code());
        return;
    }
    struct connection_deleter {
        void operator()(natsConnection* nc) const { natsc().natsConnection_Destroy(nc); }
    };
    using connection_ptr = std::unique_ptr<natsConnection, connection_deleter>;
    // The handshake blocks (up to connect_timeout per server): off the strand.
    // The io_context has work meanwhile (the strand is waiting for the result).
    blocking_.post([once = move_only{}, self = shared_from_this(), opts = std::move(opts),
                    work = asio::make_work_guard(strand_), handler = std::move(handler)]() mutable {
        natsConnection* raw = nullptr;
        const natsStatus s = natsc().natsConnection_Connect(&raw, opts.get());
        opts.reset();
        const auto strand = self->strand_;
        asio::post(strand, [once = move_only{}, self = std::move(self), s, nc = connection_ptr(raw),
                            handler = std::move(handler)]() mutable {
            if (self->stopped_) {
                if (nc) {
                    self->blocking_.post([nc = std::move(nc)] {});
                }
                self->complete(std::move(handler), asio::error::operation_aborted);
            } else if (s != NATS_OK || !nc) {
                self->stop();
                self->complete(std::move(handler), connect_error(s));
            } else {
                self->connected(nc.release(), std::move(handler));
            }
        });
        work.reset();
    });
}

void nats_client::connected(natsConnection* nc, completion_handler handler) {
    nc_ = nc;
    connected_ = true;
    read_max_payload();
    natsInbox* inbox = nullptr;
    natsStatus s = natsc().natsInbox_Create(&inbox);
    if (s == NATS_OK) {
        inbox_ = inbox;
        natsc().natsInbox_Destroy(inbox);
        s = natsc().natsConnection_Subscribe(&marker_sub_, nc_, inbox_.c_str(), on_nats_message,
                                             link_->closure());
    }
    if (s == NATS_OK) {
        s = unlimited_pending(marker_sub_);
    }
    if (s != NATS_OK) {
        natsc().natsSubscription_Destroy(marker_sub_);  // null-safe
        marker_sub_ = nullptr;
    }
    if (jetstream()) {
        ack_prefix_ = inbox_ + ".";
        if (natsc().natsConnection_Subscribe(&ack_sub_, nc_, (ack_prefix_ + "*").c_str(),
                                             on_nats_message, link_->closure()) != NATS_OK ||
            unlimited_pending(ack_sub_) != NATS_OK) {
            natsc().natsSubscription_Destroy(ack_sub_);  // null-safe
            ack_sub_ = nullptr;
        }
    }
    watch_read();
    write_ready();
    if (!jetstream()) {
        complete(std::move(handler), {});
        return;
    }
    // Connected once the stream is there (a request: off the strand, which reads its reply).
    connecting_.emplace(std::move(handler));
    run_blocking(
        [config = config_](jsCtx* js) {
            return js ? ensure_stream(js, config) : error_code(error::broker_error);
        },
        [](nats_client& c, error_code ec) {
            if (!c.connecting_) {
                return;  // stopped meanwhile
            }
            completion_handler handler(std::move(*c.connecting_));
            c.connecting_.reset();
            if (ec) {
                c.stop();
            }
            c.complete(std::move(handler), ec);
        });
}

template <typename Job, typename Done>
void nats_client::run_blocking(Job job, Done done) {
    auto js = nc_ ? make_js_context(nc_) : nullptr;
    blocking_.post([once = move_only{}, weak = weak_from_this(), strand = strand_,
                    work = asio::make_work_guard(strand_), js = std::move(js), job = std::move(job),
                    done = std::move(done)]() mutable {
        auto result = job(js.get());
        js.reset();
        asio::post(strand, [weak = std::move(weak), done = std::move(done),
                            result = std::move(result)]() mutable {
            if (auto self = weak.lock(); self && !self->stopped_) {
                done(*self, std::move(result));
            }
        });
        work.reset();
    });
}

void nats_client::disconnect(completion_handler handler) {
    stop(std::move(handler));
}

void nats_client::stop(completion_handler then) {
    if (stopped_) {
        if (then) {
            complete(std::move(then), {});
        }
        return;
    }
    stopped_ = true;
    connected_ = false;
    if (link_) {
        link_->close();
    }
    if (connecting_) {
        complete(std::move(*connecting_), asio::error::operation_aborted);
        connecting_.reset();
    }
    for (auto& [id, pending] : subscribing_) {
        complete(std::move(pending.handler), error::not_connected);
    }
    subscribing_.clear();
    for (auto& [id, handler] : history_) {
        post_completion(std::move(handler), strand_, error_code(error::not_connected),
                        std::vector<event>());
    }
    history_.clear();
    for (auto& [id, ack] : acks_) {
        complete(std::move(ack.handler), error::not_connected);
    }
    acks_.clear();
    channels_.clear();
    error_code ignored;
    socket_.close(ignored);
    expiry_.cancel();
    for (auto& h : held_) {
        complete(std::move(h.handler), error::not_connected);
    }
    held_.clear();
    for (auto& w : unsent_) {
        if (w.handler) {
            complete(std::move(w.handler), error::not_connected);
        }
    }
    unsent_.clear();
    for (auto& m : markers_) {
        for (auto& w : m.waiters) {
            if (w.handler) {
                complete(std::move(w.handler), error::not_connected);
            }
        }
    }
    markers_.clear();
    std::vector<natsSubscription*> subs;
    if (marker_sub_) {
        subs.push_back(std::exchange(marker_sub_, nullptr));
    }
    if (ack_sub_) {
        subs.push_back(std::exchange(ack_sub_, nullptr));
    }
    for (auto& [subject, sub] : subs_) {
        subs.push_back(sub.handle);
    }
    subs_.clear();
    if (!nc_) {
        if (then) {
            complete(std::move(then), {});
        }
        return;
    }
    // natsConnection_Destroy flushes what is still buffered and waits up to 500 ms for a
    // PONG that only the (now closed) strand would read: write it out here instead.
    if (natsc().natsConnection_Buffered(nc_) > 0) {
        natsc().natsConnection_ProcessWriteEvent(nc_);
    }
    blocking_.post([once = move_only{}, nc = std::exchange(nc_, nullptr), subs = std::move(subs),
                    strand = strand_, work = asio::make_work_guard(strand_),
                    then = std::move(then)]() mutable {
        destroy_connection(nc, std::move(subs));
        if (then) {
            post_completion(std::move(then), strand, error_code());
        }
        work.reset();
    });
}

void nats_client::report(connection_state state, error_code ec) {
    if (auto sink = sink_.lock()) {
        sink->state_changed(state, ec);
    }
}

void nats_client::complete(completion_handler handler, error_code ec) {
    post_completion(std::move(handler), strand_, ec);
}

// The loss is taken from the event loop's side (nats.c stops polling the socket it
// closed), not from nats.c's disconnected callback: that one comes from nats.c's
// callback thread, which a busy process can hold up until after the reconnect. Until
// then nothing must call into nats.c expecting a live connection: its reconnect thread
// holds the connection's lock through a whole handshake.
void nats_client::connection_lost() {
    if (stopped_ || !connected_) {
        return;
    }
    connected_ = false;
    reconnecting_ = true;
    // What was sent on the lost connection may or may not have arrived: unconfirmed
    // publishes and subscribes fail with connection_lost (a failed subscribe is dropped
    // here too, or nats.c would restore it).
    const auto fail = [this](waiter& w) {
        if (!w.is_publish) {
            drop_subscription(w.subject);
        }
        if (w.handler) {
            complete(std::move(w.handler), error::connection_lost);
        }
    };
    for (auto& m : markers_) {
        for (auto& w : m.waiters) {
            fail(w);
        }
    }
    markers_.clear();
    for (auto& w : unsent_) {
        fail(w);
    }
    unsent_.clear();
    // Stored or not: the acknowledgement is lost with the connection.
    for (auto& [id, ack] : acks_) {
        complete(std::move(ack.handler), error::connection_lost);
    }
    acks_.clear();
    report(connection_state::reconnecting, error::connection_lost);
}

void nats_client::on_reconnected() {
    if (stopped_ || connected_) {
        return;
    }
    connected_ = true;
    read_max_payload();  // the server may be another one
    while (!held_.empty()) {
        auto h = std::move(held_.front());
        held_.pop_front();
        send_publish(h.subject, h.message, std::move(h.handler), h.deadline);
    }
    // nats.c sent every SUB again before anything else: the marker confirms them.
    wait_for_marker({false, {}, {}, clock::now() + config_.connect_timeout});
    // Each channel reads what it missed; the read's requests follow the SUBs, so what is
    // stored after the read is republished to the subscription.
    for (auto& [channel, state] : channels_) {
        if (!state.subscribing) {
            start_read(channel);
        }
    }
    watch_read();
    write_ready();
}

void nats_client::read_max_payload() {
    max_payload_ =
        static_cast<std::size_t>(std::max<int64_t>(0, natsc().natsConnection_GetMaxPayload(nc_)));
}

void nats_client::on_closed() {
    if (stopped_) {
        return;  // our own close
    }
    // nats.c closed the connection for good: it does so after a server error it does
    // not retry (e.g. -ERR 'Maximum Subscriptions Exceeded'). Nobody would hear of it
    // again, so the broadcast is told, and becomes disconnected.
    if (auto sink = sink_.lock()) {
        sink->connection_failed(error::broker_error);
    }
}

// ---- the socket --------------------------------------------------------------------

void nats_client::close_socket() {
    error_code ignored;
    socket_.close(ignored);
    ++socket_generation_;
    read_armed_ = write_armed_ = false;
}

void nats_client::on_attached(int fd) {
    if (stopped_) {
        ::close(fd);
        return;
    }
    close_socket();
    error_code ec;
    socket_.assign(fd, ec);
    if (ec) {
        ::close(fd);
        return;
    }
    want_read_ = true;
    watch_read();
}

void nats_client::on_want_read(bool add) {
    want_read_ = add;
    if (!add) {
        // nats.c stops polling only once it has closed its socket (a loss, or the
        // close): our duplicate goes with it, before a reconnect attaches the next.
        close_socket();
        connection_lost();
        return;
    }
    watch_read();
}

void nats_client::on_want_write(bool add) {
    want_write_ = add;
    if (add) {
        write_ready();
    }
}

void nats_client::on_detached() {
    close_socket();
}

std::size_t nats_client::readable_bytes() {
    int n = 0;
    if (::ioctl(socket_.native_handle(), FIONREAD, &n) != 0) {
        return 0;
    }
    return static_cast<std::size_t>(std::max(n, 0));
}

bool nats_client::socket_ready(short events) {
    pollfd p{socket_.native_handle(), events, 0};
    return ::poll(&p, 1, 0) > 0 && (p.revents & (events | POLLERR | POLLHUP)) != 0;
}

void nats_client::read_ready() {
    if (stopped_ || !nc_) {
        return;
    }
    if (link_->queue_full(max_queued_messages, max_queued_bytes)) {
        read_paused_ = true;  // on_deliveries reads again
        return;
    }
    natsc().natsConnection_ProcessReadEvent(nc_);
    watch_read();
}

// Asio's reactor is edge-triggered: a wait started after the data came would wait for
// more. So data already there is read at once, and readiness is checked again once the
// wait is queued (the edge may have come in between).
void nats_client::watch_read() {
    // After a loss nats.c stops the polling (want_read_ false) and attaches the new
    // socket when it is back.
    if (stopped_ || !nc_ || !want_read_ || !socket_.is_open()) {
        return;
    }
    const auto post_read = [this] {
        asio::post(strand_, [self = shared_from_this(), generation = socket_generation_] {
            if (generation == self->socket_generation_) {
                self->read_ready();
            }
        });
    };
    if (readable_bytes() > 0 && !read_armed_) {
        post_read();
        return;
    }
    if (read_armed_) {
        return;
    }
    read_armed_ = true;
    socket_.async_wait(asio::posix::stream_descriptor::wait_read,
                       [self = shared_from_this(), generation = socket_generation_](error_code ec) {
                           if (generation != self->socket_generation_) {
                               return;
                           }
                           self->read_armed_ = false;
                           if (!ec) {
                               self->read_ready();
                           }
                       });
    if (readable_bytes() > 0) {
        post_read();
    }
}

void nats_client::write_ready() {
    // nats.c takes a write event with nothing to write for a closed socket (a write
    // request posted before an earlier event wrote everything comes here empty).
    if (stopped_ || !nc_ || !want_write_ || !socket_.is_open() ||
        natsc().natsConnection_Buffered(nc_) <= 0) {
        return;
    }
    natsc().natsConnection_ProcessWriteEvent(nc_);
    watch_write();
}

// Writes are tried first (the socket is nearly always writable); a wait only follows a
// full socket buffer, which nats.c's unsent bytes show.
void nats_client::watch_write() {
    if (write_armed_ || !want_write_ || natsc().natsConnection_Buffered(nc_) <= 0) {
        return;
    }
    write_armed_ = true;
    socket_.async_wait(asio::posix::stream_descriptor::wait_write,
                       [self = shared_from_this(), generation = socket_generation_](error_code ec) {
                           if (generation != self->socket_generation_) {
                               return;
                           }
                           self->write_armed_ = false;
                           if (!ec) {
                               self->write_ready();
                           }
                       });
    if (socket_ready(POLLOUT)) {
        asio::post(strand_, [self = shared_from_this(), generation = socket_generation_] {
            if (generation == self->socket_generation_) {
                self->write_ready();
            }
        });
    }
}

// ---- subscriptions and publishes ---------------------------------------------------

void nats_client::subscribe(std::string subject, completion_handler handler) {
    if (stopped_ || !nc_) {
        complete(std::move(handler), error::not_connected);
        return;
    }
    if (!connected_) {
        complete(std::move(handler), error::connection_lost);
        return;
    }
    if (subs_.contains(subject)) {
        complete(std::move(handler), {});
        return;
    }
    natsSubscription* sub = nullptr;
    const auto nats_subject = jetstream() ? config_.live_prefix() + subject : subject;
    const natsStatus s = natsc().natsConnection_Subscribe(&sub, nc_, nats_subject.c_str(),
                                                          on_nats_message, link_->closure());
    if (s != NATS_OK) {
        if (sub) {
            natsc().natsSubscription_Destroy(sub);
        }
        complete(std::move(handler), operation_error(s));
        return;
    }
    subs_.emplace(subject, subscription{sub, natsc().natsSubscription_GetID(sub)});
    if (jetstream() && !is_nats_pattern(subject)) {
        // Subscribed once the channel's newest position is read: the request follows the
        // SUB, so its answer proves the SUB, and everything stored after that position is
        // republished to the subscription. Live messages wait for it.
        auto& state = channels_[subject];
        state.subscribing = true;
        state.reading = true;
        const auto id = ++next_id_;
        subscribing_.emplace(id, pending_subscribe{subject, std::move(handler)});
        run_blocking(
            [config = config_, channel = subject](jsCtx* js) {
                return js ? last_sequence(js, config, channel) : js_last{error::broker_error, 0};
            },
            [id](nats_client& c, js_last result) { c.baseline_done(id, result); });
        return;
    }
    wait_for_marker(
        {false, std::move(subject), std::move(handler), clock::now() + config_.connect_timeout});
}

void nats_client::unsubscribe(const std::string& subject, completion_handler handler) {
    drop_subscription(subject);
    complete(std::move(handler), {});
}

void nats_client::on_messages_dropped(std::string subscribed, std::int64_t subscription_id) {
    if (stopped_) {
        return;
    }
    if (jetstream()) {
        // Patterns only: a channel reads what was dropped from the stream once nats.c
        // delivers again (on_message), when the drops are over.
        const auto prefix = config_.live_prefix();
        if (!subscribed.starts_with(prefix) ||
            !is_nats_pattern(std::string_view(subscribed).substr(prefix.size()))) {
            return;
        }
        subscribed.erase(0, prefix.size());
    }
    if (is_current(subscribed, subscription_id)) {
        report_gap(subscribed);
    }
}

bool nats_client::is_current(const std::string& subscribed, std::int64_t id) const {
    const auto found = subs_.find(subscribed);
    return found != subs_.end() && found->second.id == id;
}

void nats_client::report_gap(const std::string& subscribed) {
    if (const auto sink = sink_.lock()) {
        if (is_nats_pattern(subscribed)) {
            sink->pattern_gap(subscribed);
        } else {
            sink->history_gap(subscribed);
        }
    }
}

void nats_client::drop_subscription(const std::string& subject) {
    channels_.erase(subject);
    if (const auto found = subs_.find(subject); found != subs_.end()) {
        natsc().natsSubscription_Unsubscribe(found->second.handle);
        natsc().natsSubscription_Destroy(found->second.handle);
        subs_.erase(found);
    }
}

void nats_client::publish(std::string subject, std::string message, completion_handler handler) {
    if (stopped_ || !nc_) {
        complete(std::move(handler), error::not_connected);
        return;
    }
    auto limit = max_payload_;
    if (config_.max_payload_bytes != 0) {
        limit = limit == 0 ? config_.max_payload_bytes : std::min(limit, config_.max_payload_bytes);
    }
    if (jetstream() && limit != 0) {
        // The stream republishes it with headers (stream, subject, sequences, time):
        // the republished message must fit the server's max_payload too.
        const auto headers = 160 + 2 * config_.stored_subject(subject).size();
        limit = limit > headers ? limit - headers : 1;
    }
    if (limit != 0 && message.size() > limit) {
        complete(std::move(handler), error::payload_too_large);
        return;
    }
    const auto deadline = clock::now() + config_.publish_timeout;
    if (!connected_) {
        // Held until nats.c is back (or the publish timeout passes): handed to nats.c
        // now, it would go out after a reconnect even if the publish had failed.
        held_.push_back({std::move(subject), std::move(message), std::move(handler), deadline});
        arm_expiry(deadline);
        return;
    }
    send_publish(subject, message, std::move(handler), deadline);
}

void nats_client::send_publish(const std::string& subject, const std::string& message,
                               completion_handler handler, clock::time_point deadline) {
    if (jetstream()) {
        // Stored when the stream acknowledges it, on a reply subject of ours.
        if (!ack_sub_) {
            complete(std::move(handler), error::broker_error);
            return;
        }
        const auto id = ++next_id_;
        const auto reply = ack_prefix_ + std::to_string(id);
        const natsStatus s = natsc().natsConnection_PublishRequest(
            nc_, config_.stored_subject(subject).c_str(), reply.c_str(), message.data(),
            static_cast<int>(message.size()));
        if (s != NATS_OK) {
            complete(std::move(handler), operation_error(s));
            return;
        }
        acks_.emplace(id, pending_ack{std::move(handler), deadline});
        arm_expiry(deadline);
        return;
    }
    const natsStatus s = natsc().natsConnection_Publish(nc_, subject.c_str(), message.data(),
                                                        static_cast<int>(message.size()));
    if (s != NATS_OK) {
        complete(std::move(handler), operation_error(s));
        return;
    }
    wait_for_marker({true, {}, std::move(handler), deadline});
}

void nats_client::wait_for_marker(waiter w) {
    arm_expiry(w.deadline);
    unsent_.push_back(std::move(w));
    if (!marker_posted_) {
        // Posted: the other operations of this strand turn share the marker.
        marker_posted_ = true;
        asio::post(strand_, [self = shared_from_this()] {
            self->marker_posted_ = false;
            self->send_marker();
        });
    }
}

void nats_client::send_marker() {
    if (stopped_ || !connected_ || unsent_.empty() || !marker_sub_) {
        return;  // sent after the reconnect
    }
    const auto seq = ++next_marker_;
    const auto text = std::to_string(seq);
    if (natsc().natsConnection_Publish(nc_, inbox_.c_str(), text.data(),
                                       static_cast<int>(text.size())) != NATS_OK) {
        return;  // a loss: on_reconnected sends the next one
    }
    markers_.push_back({seq, std::move(unsent_)});
    unsent_.clear();
}

void nats_client::marker_returned(std::uint64_t seq) {
    while (!markers_.empty() && markers_.front().seq <= seq) {
        auto m = std::move(markers_.front());
        markers_.pop_front();
        for (auto& w : m.waiters) {
            if (w.handler) {
                complete(std::move(w.handler), {});
            } else if (reconnecting_ && connected_) {
                reconnecting_ = false;
                report(connection_state::connected, {});
            }
        }
    }
}

void nats_client::on_deliveries() {
    for (auto& d : link_->take_deliveries()) {
        on_message(std::move(d));
    }
    if (read_paused_) {
        read_paused_ = false;
        watch_read();
    }
}

void nats_client::on_message(nats_delivery d) {
    if (stopped_) {
        return;
    }
    if (d.subject == inbox_) {
        std::uint64_t seq = 0;
        std::from_chars(d.data.data(), d.data.data() + d.data.size(), seq);
        marker_returned(seq);
        return;
    }
    if (ack_sub_ && d.subject.starts_with(ack_prefix_)) {
        on_ack(d.subject, d.data);
        return;
    }
    if (jetstream()) {
        // Subscriptions are to the republished subjects: back to channels and patterns.
        const auto prefix = config_.live_prefix();
        if (!d.subscribed.starts_with(prefix) || !d.subject.starts_with(prefix)) {
            return;
        }
        d.subscribed.erase(0, prefix.size());
        d.subject.erase(0, prefix.size());
    }
    // A message matching a pattern and a channel, both subscribed, comes once for each.
    if (!is_current(d.subscribed, d.subscription_id)) {
        return;  // unsubscribed meanwhile (and maybe subscribed again)
    }
    if (jetstream() && d.seq != 0 && !is_nats_pattern(d.subscribed)) {
        if (const auto found = channels_.find(d.subscribed);
            found != channels_.end() && d.dropped_before > found->second.dropped_seen) {
            found->second.dropped_seen = d.dropped_before;
            read_dropped(d.subscribed);
        }
        on_live(d.subscribed, js_message{d.seq, std::move(d.data)}, d.previous_seq);
        return;
    }
    if (auto sink = sink_.lock()) {
        auto ev = d.seq != 0 ? event(std::move(d.subject), std::move(d.data), std::to_string(d.seq))
                             : event(std::move(d.subject), std::move(d.data));
        if (is_nats_pattern(d.subscribed)) {
            sink->deliver_matched(d.subscribed, std::move(ev));
        } else {
            sink->deliver(std::move(ev));
        }
    }
}

// ---- history -----------------------------------------------------------------------

void nats_client::on_ack(const std::string& subject, const std::string& data) {
    std::uint64_t id = 0;
    const auto* begin = subject.data() + ack_prefix_.size();
    std::from_chars(begin, subject.data() + subject.size(), id);
    const auto found = acks_.find(id);
    if (found == acks_.end()) {
        return;  // expired, or failed by a disconnect
    }
    // {"stream":"S","seq":12} once stored; {"error":{...}} refused; an empty status
    // message (503) when no stream took it.
    const bool stored =
        data.find("\"seq\"") != std::string::npos && data.find("\"error\"") == std::string::npos;
    complete(std::move(found->second.handler), stored ? error_code() : error::broker_error);
    acks_.erase(found);
}

void nats_client::baseline_done(std::uint64_t id, js_last result) {
    const auto found = subscribing_.find(id);
    if (found == subscribing_.end()) {
        return;
    }
    completion_handler handler(std::move(found->second.handler));
    const auto channel = std::move(found->second.channel);
    subscribing_.erase(found);
    if (result.ec) {
        drop_subscription(channel);
        complete(std::move(handler), result.ec);
        return;
    }
    auto& state = channels_[channel];
    state.subscribing = false;
    state.last = result.seq;
    complete(std::move(handler), {});
    release_held(channel);
}

void nats_client::on_live(const std::string& channel, js_message m, std::uint64_t previous) {
    const auto found = channels_.find(channel);
    if (found == channels_.end()) {
        return;
    }
    auto& state = found->second;
    if (state.reading) {
        state.held.push_back({std::move(m), previous});
        return;
    }
    if (m.seq <= state.last) {
        return;  // delivered already (read from the stream, then republished)
    }
    if (previous > state.last) {
        // Messages in between were missed: read them from the stream first.
        state.held.push_back({std::move(m), previous});
        start_read(channel);
        return;
    }
    state.last = m.seq;
    if (auto sink = sink_.lock()) {
        sink->deliver(event(channel, std::move(m.data), std::to_string(m.seq)));
    }
}

void nats_client::release_held(const std::string& channel) {
    const auto found = channels_.find(channel);
    if (found == channels_.end()) {
        return;
    }
    found->second.reading = false;
    auto held = std::move(found->second.held);
    found->second.held.clear();
    for (auto& h : held) {
        // Each looked up again: delivering may unsubscribe, a hole starts another read
        // (the rest wait for it again).
        on_live(channel, std::move(h.message), h.previous);
    }
    if (const auto again = channels_.find(channel); again != channels_.end() &&
                                                    !again->second.reading &&
                                                    std::exchange(again->second.dropped, false)) {
        start_read(channel);
    }
}

void nats_client::read_dropped(const std::string& channel) {
    auto& state = channels_[channel];
    if (state.subscribing || state.reading) {
        state.dropped = true;
    } else {
        start_read(channel);
    }
}

void nats_client::start_read(const std::string& channel) {
    auto& state = channels_[channel];
    state.reading = true;
    // Unique across channels and subscriptions: a channel subscribed again meanwhile
    // must not take an earlier read's result.
    const auto generation = state.generation = ++next_id_;
    std::optional<std::uint64_t> after;
    if (state.last != 0) {
        after = state.last;
    }
    run_blocking(
        [config = config_, channel, after](jsCtx* js) {
            if (!js) {
                return js_read{error::broker_error, {}};
            }
            // Most channels missed nothing: one request tells (the newest stored is the
            // last delivered, so it is kept and nothing follows it).
            if (after) {
                if (const auto newest = last_sequence(js, config, channel);
                    !newest.ec && newest.seq == *after) {
                    return js_read{};
                }
            }
            return read_history(js, config, channel, after, 0);
        },
        [channel, generation](nats_client& c, js_read result) {
            c.read_done(channel, generation, std::move(result));
        });
}

void nats_client::read_done(const std::string& channel, std::uint64_t generation, js_read result) {
    auto found = channels_.find(channel);
    if (found == channels_.end() || found->second.generation != generation) {
        return;  // unsubscribed, or read again since
    }
    if (result.ec == error::invalid_position) {
        // The last position is later than anything the stream has: a stream made again
        // (what we delivered is gone). Everything it keeps follows.
        if (auto sink = sink_.lock()) {
            sink->history_gap(channel);
        }
        found = channels_.find(channel);
        if (found != channels_.end()) {
            found->second.last = 0;
            start_read(channel);
        }
        return;
    }
    if (result.ec && result.ec != error::history_gap) {
        // The connection is down (the reconnect reads again), or JetStream is not ready
        // yet after a server restart: try again shortly.
        if (connected_) {
            auto timer =
                std::make_shared<asio::steady_timer>(strand_, std::chrono::milliseconds(200));
            timer->async_wait([timer, weak = weak_from_this(), channel, generation](error_code ec) {
                auto self = weak.lock();
                if (ec || !self || self->stopped_) {
                    return;
                }
                const auto again = self->channels_.find(channel);
                if (again != self->channels_.end() && again->second.generation == generation) {
                    self->start_read(channel);
                }
            });
        }
        return;
    }
    if (result.ec == error::history_gap) {
        // Trimmed before it could be read: never skipped silently. Subscribers end after
        // what they have; what is still kept follows.
        if (auto sink = sink_.lock()) {
            sink->history_gap(channel);
        }
    }
    for (auto& m : result.messages) {
        found = channels_.find(channel);  // delivering may unsubscribe
        if (found == channels_.end() || found->second.generation != generation) {
            return;
        }
        if (m.seq <= found->second.last) {
            continue;
        }
        found->second.last = m.seq;
        if (auto sink = sink_.lock()) {
            sink->deliver(event(channel, std::move(m.data), std::to_string(m.seq)));
        }
    }
    release_held(channel);
}

void nats_client::history(std::string channel, history_query query,
                          backend::history_handler handler) {
    if (stopped_ || !nc_) {
        post_completion(std::move(handler), strand_, error_code(error::not_connected),
                        std::vector<event>());
        return;
    }
    std::optional<std::uint64_t> after;
    if (query.after) {
        std::uint64_t n = 0;
        const auto& text = *query.after;
        const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
        if (text.empty() || ec != std::errc() || end != text.data() + text.size()) {
            post_completion(std::move(handler), strand_, error_code(error::invalid_position),
                            std::vector<event>());
            return;
        }
        after = n;
    }
    const auto id = ++next_id_;
    history_.emplace(id, std::move(handler));
    run_blocking(
        [config = config_, channel, after, limit = query.limit](jsCtx* js) {
            return js ? read_history(js, config, channel, after, limit)
                      : js_read{error::broker_error, {}};
        },
        [id, channel](nats_client& c, js_read result) {
            const auto found = c.history_.find(id);
            if (found == c.history_.end()) {
                return;
            }
            std::vector<event> events;
            if (!result.ec) {
                events.reserve(result.messages.size());
                for (auto& m : result.messages) {
                    events.emplace_back(channel, std::move(m.data), std::to_string(m.seq));
                }
            }
            post_completion(std::move(found->second), c.strand_, result.ec, std::move(events));
            c.history_.erase(found);
        });
}

// ---- timeouts ----------------------------------------------------------------------

void nats_client::arm_expiry(clock::time_point deadline) {
    if (stopped_ || (expiry_armed_ && deadline >= expiry_.expiry())) {
        return;
    }
    expiry_armed_ = true;
    expiry_.expires_at(deadline);  // cancels a later wait: its handler sees a newer generation
    expiry_.async_wait([self = shared_from_this(), generation = ++expiry_generation_](error_code) {
        if (generation != self->expiry_generation_) {
            return;
        }
        self->expiry_armed_ = false;
        self->expire();
    });
}

void nats_client::expire() {
    if (stopped_) {
        return;
    }
    const auto now = clock::now();
    while (!held_.empty() && held_.front().deadline <= now) {
        // Never handed to nats.c: the server was not reachable for publish_timeout.
        complete(std::move(held_.front().handler), error::reconnect_timeout);
        held_.pop_front();
    }
    const auto expire_waiters = [&](std::vector<waiter>& waiters) {
        std::erase_if(waiters, [&](waiter& w) {
            if (w.deadline > now) {
                return false;
            }
            if (w.handler) {
                if (!w.is_publish) {
                    drop_subscription(w.subject);  // the app sees a failed subscribe
                }
                complete(std::move(w.handler), error::timeout);
            }
            return true;
        });
    };
    expire_waiters(unsent_);
    for (auto& m : markers_) {
        expire_waiters(m.waiters);
    }
    std::erase_if(acks_, [&](auto& entry) {
        if (entry.second.deadline > now) {
            return false;
        }
        complete(std::move(entry.second.handler), error::timeout);
        return true;
    });
    // The next deadline: a full scan here, so that arming stays O(1) per operation.
    auto earliest = clock::time_point::max();
    for (const auto& h : held_) {
        earliest = std::min(earliest, h.deadline);
    }
    for (const auto& w : unsent_) {
        earliest = std::min(earliest, w.deadline);
    }
    for (const auto& m : markers_) {
        for (const auto& w : m.waiters) {
            earliest = std::min(earliest, w.deadline);
        }
    }
    for (const auto& [id, ack] : acks_) {
        earliest = std::min(earliest, ack.deadline);
    }
    if (earliest != clock::time_point::max()) {
        arm_expiry(earliest);
    }
}

}  // namespace broadcaster::detail
