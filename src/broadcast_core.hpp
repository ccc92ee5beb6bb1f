#pragma once

#include "history_seam.hpp"
#include "subscriber_state.hpp"

#include <broadcaster/broadcast.hpp>
#include <broadcaster/error.hpp>

#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/strand.hpp>

#include <atomic>
#include <list>
#include <unordered_map>

namespace broadcaster::detail {

// The state behind a `broadcast`: the backend, the channel table and the fan-out.
// Everything but the atomics is touched only on `strand_`.
//
// Lifetime: the broadcast handle owns the core, which owns the backend. Handlers the
// backend keeps (connect, subscribe, publish completions) hold only a weak reference
// to the core, so no cycle keeps the core, the backend and its sockets alive: once the
// handle is gone and queued work has run (or the io_context is destroyed), all of it
// is freed. Work queued on the strand holds a strong reference while it waits.
class broadcast_core final : public backend_sink,
                             public std::enable_shared_from_this<broadcast_core> {
  public:
    broadcast_core(boost::asio::any_io_executor executor, std::unique_ptr<backend> backend,
                   std::string redacted_url);
    ~broadcast_core();

    // Hands the backend its strand and sink; call once, right after make_shared.
    void attach();

    const boost::asio::any_io_executor& executor() const noexcept { return executor_; }
    const std::string& url() const noexcept { return url_; }

    // The public operations. Each reads its handler's cancellation slot on the calling
    // thread (where the app emits cancellation) and installs its cancel handler there.
    void connect(error_handler handler);
    void disconnect(error_handler handler);
    // Disconnects, then completes once every handler given to the backend has run or
    // been destroyed (the backend's disconnect included: client backends complete it
    // when their connections are closed).
    void async_shutdown(error_handler handler);
    void publish(std::string channel, std::string message, error_handler handler);
    void subscribe(std::vector<std::string> channels, subscribe_options options,
                   subscribe_handler handler);
    void subscribe_callback(std::vector<std::string> channels, event_callback on_event,
                            subscribe_options options, subscription_handler handler);
    // Ends a subscriber whose handle is going away; any thread.
    void release(const std::shared_ptr<subscriber_state>& state);
    // Ends a subscriber at once with `reason` (its callback threw); any thread.
    void fail(const std::shared_ptr<subscriber_state>& state, boost::system::error_code reason);
    // Disconnects in the background; the broadcast handle is going away.
    void shutdown();

    void set_observer(state_observer observer);
    connection_state state() const noexcept { return state_.load(std::memory_order_relaxed); }
    broadcast_stats stats() const noexcept;

    // backend_sink, called by the backend on the strand.
    void deliver(event ev) override;
    void state_changed(connection_state state, boost::system::error_code ec) override;
    void history_gap(std::string_view channel) override;
    void subscription_refused(std::string_view channel) override;
    void subscription_refused(std::string_view channel, std::string_view reason) override;
    void connection_failed(boost::system::error_code ec) override;
    void pattern_gap(std::string_view pattern) override;
    void deliver_matched(std::string_view pattern, event ev) override;

    // broadcast::async_history (the history section of broadcast_core.cpp).
    void history(std::string channel, std::size_t limit, history_handler handler);

  private:
    struct pending_subscribe;
    // Completes the shutdowns waiting in it once the last handler given to the backend
    // that holds it is gone (see `work_`).
    struct quiet_latch;
    struct connect_waiter {
        error_handler handler;
        std::uint64_t id = 0;
        boost::asio::cancellation_slot slot;
    };
    // One channel's broker subscription, a small state machine driven by `reconcile`:
    //   idle --subscribe--> busy --ok--> confirmed --last subscriber gone, unsubscribe-->
    //   busy --done--> idle (erased, or subscribed again if subscribers came meanwhile).
    // At most one backend call per channel is in flight. `confirmed` turns false as
    // soon as an unsubscribe starts: a subscriber arriving then waits for it to finish
    // and for a new subscribe, never counting on a subscription that is going away.
    // Invariant: while not confirmed, every subscriber waits in `waiters`.
    struct channel_entry {
        std::vector<std::shared_ptr<subscriber_state>> subscribers;
        // Subscribe operations waiting for the broker to confirm this channel.
        std::vector<std::shared_ptr<pending_subscribe>> waiters;
        // Distinguishes this entry from a later one of the same name (after a
        // disconnect), so a stale backend completion is ignored.
        std::uint64_t generation = 0;
        bool confirmed = false;  // the broker subscription is in place and staying
        bool busy = false;       // a backend subscribe/unsubscribe is in flight
        // Subscribers whose history of this channel is being fetched: their live
        // events wait here (see history_seam).
        std::unordered_map<const subscriber_state*, history_seam> catching_up;
    };
    struct string_hash {
        using is_transparent = void;
        std::size_t operator()(std::string_view s) const noexcept {
            return std::hash<std::string_view>{}(s);
        }
    };
    void do_connect(connect_waiter waiter);
    void cancel_connect(std::uint64_t id);
    void finish_connect_waiter(connect_waiter waiter, boost::system::error_code ec);
    // `reason`: why the backend's connection ended, when it did so by itself (the
    // subscribes still waiting fail with it); none when the app disconnects.
    void do_disconnect(error_handler handler, boost::system::error_code reason = {});
    void do_subscribe(std::vector<std::string> channels, subscribe_options options,
                      const std::shared_ptr<pending_subscribe>& op);
    void cancel_subscribe(const std::shared_ptr<pending_subscribe>& op);
    void finish_subscribe(const std::shared_ptr<pending_subscribe>& op,
                          boost::system::error_code ec, subscriber sub);
    void channel_confirmed(const std::shared_ptr<pending_subscribe>& op,
                           boost::system::error_code ec);
    using channel_table =
        std::unordered_map<std::string, channel_entry, string_hash, std::equal_to<>>;
    // The channels, or the patterns (subscribe_options::pattern): the same machinery,
    // apart, so that a channel and a pattern of the same name never meet.
    channel_table& table(bool patterns) noexcept { return patterns ? patterns_ : channels_; }
    // Brings the broker subscription of `name` in line with its local subscribers.
    void reconcile(const std::string& name, bool patterns);
    void backend_subscribed(const std::string& name, bool patterns, std::uint64_t generation,
                            boost::system::error_code ec);
    void backend_unsubscribed(const std::string& name, bool patterns, std::uint64_t generation);
    // Queues `ev` on every subscriber of `entry`.
    void fan_out(channel_entry& entry, const event& ev);
    void detach(const std::shared_ptr<subscriber_state>& state);
    // Ends every subscriber of `channel` with `ec`, after what it already has.
    // `detail`: what the backend said about it, for subscriber::error_message().
    void end_subscribers(std::string_view channel, broadcaster::error ec,
                         std::string_view detail = {});
    void end_subscribers(channel_table& table, std::string_view name, broadcaster::error ec,
                         std::string_view detail = {});

    // History (the history section of broadcast_core.cpp). Checks `options` and, if they ask for
    // history, sets `op`'s query and starts holding its live events; an error refuses
    // the subscribe.
    boost::system::error_code prepare_history(pending_subscribe& op,
                                              const subscribe_options& options);
    // Every channel of `op` is confirmed: fetch its history, then complete it.
    void fetch_history(const std::shared_ptr<pending_subscribe>& op);
    void history_fetched(const std::shared_ptr<pending_subscribe>& op, const std::string& name,
                         std::uint64_t session, boost::system::error_code ec,
                         std::vector<event> events);
    // Whether `ev` stays out of `state`'s queue: held while its history of `entry` is
    // fetched, or dropped as a duplicate of that history after the join.
    static bool hold_for_history(channel_entry& entry, const subscriber_state& state,
                                 const event& ev);
    // Queues `ev` on `state` and counts it; false if the subscriber overflowed.
    bool push_counted(const std::shared_ptr<subscriber_state>& state, const event& ev);
    void set_state(connection_state state, boost::system::error_code ec);
    void update_gauges() noexcept;
    // What a failed subscribe completes with: an empty handle that still knows the
    // broadcast's executor.
    subscriber empty_subscriber() const;

    const boost::asio::any_io_executor executor_;
    const boost::asio::strand<boost::asio::any_io_executor> strand_;
    const std::unique_ptr<backend> backend_;
    const std::string url_;

    channel_table channels_;
    channel_table patterns_;
    std::uint64_t next_generation_ = 0;
    std::uint64_t subscriber_count_ = 0;
    bool connected_ = false;
    bool connecting_ = false;
    // Bumped by every disconnect, so a connect that was overtaken by it knows.
    std::uint64_t session_ = 0;
    // A list: waiters leave from the middle when cancelled, and no handler may be
    // move-assigned (see move_only in completion.hpp).
    std::list<connect_waiter> connect_waiters_;
    std::atomic<std::uint64_t> next_connect_id_{0};
    // Held by every handler given to the backend (and by the core): a shutdown waits in
    // it until the backend has let go of all of them, then a new one takes its place.
    std::shared_ptr<quiet_latch> work_;
    state_observer observer_;
    // Observer calls run here, one at a time and in the order of the changes.
    const boost::asio::strand<boost::asio::any_io_executor> observer_strand_ =
        boost::asio::make_strand(executor_);
    connection_state last_backend_state_ = connection_state::disconnected;

    std::atomic<connection_state> state_{connection_state::disconnected};
    std::atomic<bool> observing_{true};  // false once the broadcast handle is gone
    std::atomic<std::uint64_t> published_{0};
    // Written only on the strand; atomics so that stats() can read them anywhere.
    std::atomic<std::uint64_t> received_{0};
    std::atomic<std::uint64_t> delivered_{0};
    std::atomic<std::uint64_t> dropped_{0};
    std::atomic<std::uint64_t> active_channels_{0};
    std::atomic<std::uint64_t> active_subscribers_{0};
    std::atomic<std::uint64_t> reconnects_{0};
};

}  // namespace broadcaster::detail
