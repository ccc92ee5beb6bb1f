// Deterministic simulation of the broadcast core against a scripted broker.
//
// Every backend operation (connect, disconnect, subscribe, unsubscribe, publish) and
// every delivery is queued, and a seeded random scheduler decides what happens next:
// complete an operation (possibly with an error, in any order across channels), deliver
// an event, run one queued handler, simulate a lost and restored connection, or let the
// app act (subscribe to one or several channels, drop a subscriber, publish,
// disconnect, connect, destroy the broadcast). After each schedule the invariants are
// checked: every completion ran at most once (exactly once when the io_context was run
// to the end); a confirmed subscriber received every later publish of its channels that
// the broker accepted and did not lose in a simulated outage; the backend was called a
// bounded number of times (no retry without an app request); and once the io_context
// is destroyed, the core, the backend and every handler are freed.
//
// BROADCASTER_SIM_SEED=N replays one schedule; BROADCASTER_SIM_SCHEDULES=N sets how many
// schedules run (default 5000).

#include "completion.hpp"
#include "test_support.hpp"

#include <broadcaster/backend.hpp>

#include <boost/asio/post.hpp>

#include <cstdlib>
#include <deque>
#include <map>
#include <random>
#include <set>
#include <sstream>

namespace broadcaster::test {
namespace {

using boost::system::error_code;

// The scripted broker and what the test knows about it; outlives each backend.
struct world {
    std::mt19937_64 rng;
    class scripted_backend* backend = nullptr;
    int backends_alive = 0;
    std::weak_ptr<backend_sink> sink;  // the core, seen from its backend
    // Backend calls, to bound them.
    int connect_calls = 0;
    int subscribe_calls = 0;
    int unsubscribe_calls = 0;
    int publish_calls = 0;
    // Publish ids whose delivery was lost in a simulated outage or a disconnect.
    std::set<int> lost;
    std::vector<std::string> log;  // what happened, printed on failure

    bool chance(double p) { return std::bernoulli_distribution(p)(rng); }
    std::size_t pick(std::size_t n) {
        return std::uniform_int_distribution<std::size_t>(0, n - 1)(rng);
    }
    void note(std::string what) {
        if (log.size() < 400) {
            log.push_back(std::move(what));
        }
    }
};

// Never confirmed by the broker (e.g. a name it refuses).
const std::string bad_channel = "bad";

class scripted_backend final : public backend {
  public:
    enum class kind { connect, disconnect, subscribe, unsubscribe, publish };
    struct op {
        kind what;
        std::string channel;
        std::string message;
        completion_handler handler;
        std::uint64_t session;
    };

    explicit scripted_backend(world& w) : world_(w) {
        ++world_.backends_alive;
        world_.backend = this;
    }

    // Destroying a backend completes what it still holds with operation_aborted, as
    // destroying an Asio I/O object does.
    ~scripted_backend() override {
        for (auto& o : pending_) {
            detail::post_completion(std::move(o->handler), executor(),
                                    error_code(asio::error::operation_aborted));
        }
        world_.backend = nullptr;
        --world_.backends_alive;
    }

    void async_connect(completion_handler handler) override {
        world_.sink = weak_sink();
        ++world_.connect_calls;
        ++session_;
        queue(kind::connect, {}, {}, std::move(handler));
    }
    void async_disconnect(completion_handler handler) override {
        // The connection goes at once; what was in flight on it completes later, failed.
        ++session_;
        connected_ = false;
        broker_.clear();
        lose_deliveries();
        queue(kind::disconnect, {}, {}, std::move(handler));
    }
    void async_subscribe(std::string channel, completion_handler handler) override {
        ++world_.subscribe_calls;
        queue(kind::subscribe, std::move(channel), {}, std::move(handler));
    }
    void async_unsubscribe(std::string channel, completion_handler handler) override {
        ++world_.unsubscribe_calls;
        queue(kind::unsubscribe, std::move(channel), {}, std::move(handler));
    }
    void async_publish(std::string channel, std::string message,
                       completion_handler handler) override {
        ++world_.publish_calls;
        queue(kind::publish, std::move(channel), std::move(message), std::move(handler));
    }

    std::size_t pending() const { return pending_.size(); }
    const std::set<std::string>& broker() const { return broker_; }
    std::size_t deliveries() const { return deliveries_.size(); }

    // The broker processes operation `i` now (or refuses it when `fail`).
    void complete(std::size_t i, bool fail) {
        auto o = std::move(pending_[i]);
        pending_[i] = std::move(pending_.back());
        pending_.pop_back();
        error_code ec;
        const bool current = o->session == session_;
        switch (o->what) {
            case kind::connect:
                ec = !current ? error_code(asio::error::operation_aborted)
                     : fail   ? error_code(error::not_connected)
                              : error_code();
                if (current) {
                    // A connect a disconnect superseded leaves the newer connection be.
                    connected_ = !fail;
                }
                break;
            case kind::disconnect:
                break;
            case kind::subscribe:
                if (!current || !connected_) {
                    ec = error::not_connected;
                } else if (fail || o->channel == bad_channel) {
                    ec = error::broker_error;
                } else {
                    broker_.insert(o->channel);
                }
                break;
            case kind::unsubscribe:
                if (current && connected_) {
                    broker_.erase(o->channel);
                } else {
                    ec = error::not_connected;
                }
                break;
            case kind::publish:
                if (!current || !connected_) {
                    ec = error::not_connected;
                } else if (fail) {
                    ec = error::timeout;
                } else if (broker_.count(o->channel) != 0) {
                    // Like Redis: delivered only on a channel confirmed subscribed.
                    deliveries_.emplace_back(o->channel, o->message);
                }
                break;
        }
        world_.note("complete " + name(o->what) + " " + o->channel + " " + o->message + " -> " +
                    (ec ? ec.message() : "ok"));
        detail::post_completion(std::move(o->handler), executor(), ec);
    }

    // Hands the oldest event the broker sent to the core, on its strand.
    void deliver_one() {
        auto ev = std::move(deliveries_.front());
        deliveries_.pop_front();
        world_.note("deliver " + std::string(ev.channel()) + " " + std::string(ev.message()));
        asio::post(executor(), [sink = weak_sink(), ev = std::move(ev)] {
            if (auto s = sink.lock()) {
                s->deliver(ev);
            }
        });
    }

    // A lost connection, restored at once with every subscription (a supervised
    // backend's reconnect): only the events in flight are lost.
    void simulate_reconnect() {
        if (!connected_) {
            return;
        }
        world_.note("reconnect");
        lose_deliveries();
        asio::post(executor(), [sink = weak_sink()] {
            if (auto s = sink.lock()) {
                s->state_changed(connection_state::reconnecting, asio::error::connection_reset);
                s->state_changed(connection_state::connected, {});
            }
        });
    }

  private:
    static std::string name(kind k) {
        static const char* names[] = {"connect", "disconnect", "subscribe", "unsubscribe",
                                      "publish"};
        return names[static_cast<int>(k)];
    }

    void queue(kind what, std::string channel, std::string message, completion_handler handler) {
        world_.note("call " + name(what) + " " + channel + " " + message);
        auto o = std::make_unique<op>();
        o->what = what;
        o->channel = std::move(channel);
        o->message = std::move(message);
        o->handler.swap(handler);  // see move_only in completion.hpp
        o->session = session_;
        pending_.push_back(std::move(o));
    }

    void lose_deliveries() {
        for (const auto& ev : deliveries_) {
            world_.lost.insert(std::stoi(std::string(ev.message())));
        }
        deliveries_.clear();
    }

    world& world_;
    std::vector<std::unique_ptr<op>> pending_;
    std::deque<event> deliveries_;
    std::set<std::string> broker_;  // channels the broker has confirmed
    std::uint64_t session_ = 0;
    bool connected_ = false;
};

// What the app did and saw.
struct sub_record {
    std::vector<std::string> channels;
    int epoch = 0;  // app connection epoch at subscribe time
    int completions = 0;
    bool ok = false;
    bool dropped = false;
    int first_publish = 0;  // publishes with this id or later must be received
    subscriber handle;
};
struct publish_record {
    std::string channel;
    int completions = 0;
    bool ok = false;
};

class simulation {
  public:
    explicit simulation(std::uint64_t seed) { world_.rng.seed(seed); }

    // Runs one schedule; returns a description of the first broken invariant, if any.
    std::string run() {
        {
            auto io = std::make_unique<asio::io_context>(1);
            io_ = io.get();
            auto bc = std::make_unique<broadcast>(io->get_executor(),
                                                  std::make_unique<scripted_backend>(world_));
            connect(*bc);
            const int steps = 40 + static_cast<int>(world_.pick(160));
            bool destroyed = false;
            for (int step = 0; step < steps && failure_.empty(); ++step) {
                if (world_.chance(0.01)) {
                    // Destroy the broadcast with work in flight, then maybe never run again.
                    world_.note("destroy broadcast");
                    subs_.clear();
                    bc.reset();
                    destroyed = true;
                    if (world_.chance(0.5)) {
                        break;
                    }
                    continue;
                }
                this->step(bc.get());
            }
            if (!destroyed && failure_.empty()) {
                drain(*io);
                check_completed_once();
                check_deliveries();
                check_settled(*bc);
            }
            subs_.clear();
            bc.reset();
            if (!destroyed && failure_.empty() && world_.chance(0.5)) {
                drain(*io);
            }
            check_bounded();
            io.reset();  // possibly never run again since the broadcast went away
        }
        subs_.clear();
        if (failure_.empty() && world_.backends_alive != 0) {
            failure_ = "the backend outlived its io_context";
        }
        if (failure_.empty() && !world_.sink.expired()) {
            failure_ = "the broadcast core outlived its io_context";
        }
        if (failure_.empty() && alive_.use_count() != 1) {
            failure_ = std::to_string(alive_.use_count() - 1) +
                       " completion handlers outlived their io_context";
        }
        return failure_;
    }

    std::string log() const {
        std::ostringstream out;
        for (const auto& line : world_.log) {
            out << "  " << line << "\n";
        }
        return out.str();
    }

  private:
    static constexpr const char* channels_[] = {"a", "b", "c", "bad"};

    void step(broadcast* bc) {
        auto* backend = world_.backend;
        const auto roll = world_.pick(100);
        if (roll < 30) {
            // Run one queued handler: the core's and the app's work interleave freely.
            io_->restart();  // an io_context out of work stops
            io_->poll_one();
        } else if (roll < 55) {
            if (backend && backend->pending() > 0) {
                backend->complete(world_.pick(backend->pending()), world_.chance(0.1));
            }
        } else if (roll < 65) {
            if (backend && backend->deliveries() > 0) {
                backend->deliver_one();
            }
        } else if (roll < 67) {
            if (backend) {
                backend->simulate_reconnect();
            }
        } else if (bc) {
            app_action(*bc);
        }
    }

    void app_action(broadcast& bc) {
        const auto roll = world_.pick(100);
        if (roll < 35) {
            subscribe(bc);
        } else if (roll < 50) {
            if (!subs_.empty()) {
                auto& rec = subs_[world_.pick(subs_.size())];
                if (!rec->dropped) {
                    world_.note("app drops a subscriber");
                    rec->dropped = true;
                    rec->handle = subscriber();
                }
            }
        } else if (roll < 90) {
            publish(bc);
        } else if (roll < 94) {
            world_.note("app disconnects");
            ++epoch_;
            bc.async_disconnect([this, token = alive_](error_code) { ++disconnects_done_; });
            ++disconnects_;
        } else {
            connect(bc);
        }
    }

    void connect(broadcast& bc) {
        world_.note("app connects");
        ++connects_;
        bc.async_connect([this, token = alive_](error_code) { ++connects_done_; });
    }

    void subscribe(broadcast& bc) {
        auto rec = std::make_shared<sub_record>();
        const auto n = 1 + world_.pick(world_.chance(0.3) ? 3 : 1);
        for (std::size_t i = 0; i < n; ++i) {
            std::string name = channels_[world_.pick(world_.chance(0.05) ? 4 : 3)];
            if (std::find(rec->channels.begin(), rec->channels.end(), name) ==
                rec->channels.end()) {
                rec->channels.push_back(name);
            }
        }
        rec->epoch = epoch_;
        channel_requests_ += static_cast<int>(rec->channels.size());
        std::string names;
        for (const auto& c : rec->channels) {
            names += c + " ";
        }
        world_.note("app subscribes " + names);
        subs_.push_back(rec);
        bc.async_subscribe(
            rec->channels, [this, rec, token = alive_](error_code ec, subscriber sub) {
                if (++rec->completions > 1) {
                    failure_ = "a subscribe completed twice";
                }
                world_.note("app subscribe done: " + (ec ? ec.message() : std::string("ok")));
                rec->ok = !ec;
                rec->first_publish = static_cast<int>(publishes_.size());
                if (!ec && !rec->dropped) {
                    rec->handle = std::move(sub);
                }
            });
    }

    void publish(broadcast& bc) {
        const int id = static_cast<int>(publishes_.size());
        auto rec = std::make_shared<publish_record>();
        rec->channel = channels_[world_.pick(3)];
        publishes_.push_back(rec);
        world_.note("app publishes " + std::to_string(id) + " on " + rec->channel);
        bc.async_publish(rec->channel, std::to_string(id),
                         [this, rec, token = alive_](error_code ec) {
                             if (++rec->completions > 1) {
                                 failure_ = "a publish completed twice";
                             }
                             rec->ok = !ec;
                         });
    }

    // Lets everything finish without faults: no operation is left waiting.
    void drain(asio::io_context& io) {
        for (int i = 0; i < 100'000; ++i) {
            io.restart();
            if (io.poll() > 0) {
                continue;
            }
            auto* backend = world_.backend;
            if (backend && backend->pending() > 0) {
                backend->complete(0, false);
            } else if (backend && backend->deliveries() > 0) {
                backend->deliver_one();
            } else {
                return;
            }
        }
        failure_ = "the core never went quiet (retrying without end?)";
    }

    void check_completed_once() {
        if (!failure_.empty()) {
            return;
        }
        for (const auto& rec : subs_) {
            if (rec->completions != 1) {
                failure_ = "a subscribe completed " + std::to_string(rec->completions) + " times";
                return;
            }
        }
        for (const auto& rec : publishes_) {
            if (rec->completions != 1) {
                failure_ = "a publish completed " + std::to_string(rec->completions) + " times";
                return;
            }
        }
        if (connects_done_ != connects_ || disconnects_done_ != disconnects_) {
            failure_ = "a connect or disconnect did not complete exactly once";
        }
    }

    void check_deliveries() {
        if (!failure_.empty()) {
            return;
        }
        for (const auto& rec : subs_) {
            if (!rec->ok || rec->dropped || rec->epoch != epoch_) {
                continue;
            }
            std::set<int> got;
            while (auto ev = rec->handle.try_receive()) {
                got.insert(std::stoi(std::string(ev->message())));
            }
            for (int id = rec->first_publish; id < static_cast<int>(publishes_.size()); ++id) {
                const auto& p = *publishes_[id];
                if (!p.ok || world_.lost.count(id) != 0 ||
                    std::find(rec->channels.begin(), rec->channels.end(), p.channel) ==
                        rec->channels.end()) {
                    continue;
                }
                if (got.count(id) == 0) {
                    failure_ = "a confirmed subscriber of " + p.channel + " missed publish " +
                               std::to_string(id);
                    return;
                }
            }
        }
    }

    // Once quiet, the broker holds exactly the channels of the live subscribers, and
    // the gauges count them.
    void check_settled(broadcast& bc) {
        if (!failure_.empty()) {
            return;
        }
        std::set<std::string> wanted;
        std::uint64_t live = 0;
        for (const auto& rec : subs_) {
            if (rec->ok && !rec->dropped && rec->epoch == epoch_) {
                ++live;
                wanted.insert(rec->channels.begin(), rec->channels.end());
            }
        }
        if (world_.backend && world_.backend->broker() != wanted) {
            failure_ = "the broker's subscriptions do not match the live subscribers";
        } else if (bc.stats().active_subscribers != live) {
            failure_ = "active_subscribers is " + std::to_string(bc.stats().active_subscribers) +
                       ", " + std::to_string(live) + " live";
        } else if (bc.stats().active_channels != wanted.size()) {
            failure_ = "active_channels is " + std::to_string(bc.stats().active_channels) + ", " +
                       std::to_string(wanted.size()) + " wanted";
        }
    }

    void check_bounded() {
        if (!failure_.empty()) {
            return;
        }
        // Each broker subscribe answers a channel an app subscribe asked for.
        if (world_.subscribe_calls > channel_requests_) {
            failure_ = std::to_string(world_.subscribe_calls) + " backend subscribes for " +
                       std::to_string(channel_requests_) + " channels requested";
        } else if (world_.unsubscribe_calls > world_.subscribe_calls) {
            failure_ = "more backend unsubscribes than subscribes";
        } else if (world_.publish_calls > static_cast<int>(publishes_.size())) {
            failure_ = "more backend publishes than app publishes";
        } else if (world_.connect_calls > connects_) {
            failure_ = "more backend connects than app connects";
        }
    }

    world world_;
    asio::io_context* io_ = nullptr;
    std::shared_ptr<int> alive_ = std::make_shared<int>(0);  // captured by every app handler
    std::vector<std::shared_ptr<sub_record>> subs_;
    std::vector<std::shared_ptr<publish_record>> publishes_;
    int epoch_ = 0;
    int channel_requests_ = 0;
    int connects_ = 0;
    int connects_done_ = 0;
    int disconnects_ = 0;
    int disconnects_done_ = 0;
    std::string failure_;
};

std::uint64_t env_or(const char* name, std::uint64_t fallback) {
    const char* value = std::getenv(name);
    return value ? std::strtoull(value, nullptr, 10) : fallback;
}

TEST(simulation, random_schedules_keep_every_promise) {
    const char* replay = std::getenv("BROADCASTER_SIM_SEED");
    const auto first = replay ? env_or("BROADCASTER_SIM_SEED", 0) : std::random_device{}();
    const auto count = replay ? 1 : env_or("BROADCASTER_SIM_SCHEDULES", 5000);
    const auto started = std::chrono::steady_clock::now();
    int failures = 0;
    std::uint64_t ran = 0;
    for (std::uint64_t i = 0; i < count && failures < 3; ++i, ++ran) {
        const auto seed = first + i;
        simulation sim(seed);
        const auto failure = sim.run();
        if (!failure.empty()) {
            ++failures;
            ADD_FAILURE() << "schedule " << seed << ": " << failure
                          << "\nreplay with BROADCASTER_SIM_SEED=" << seed << "\n"
                          << (replay ? sim.log() : std::string());
        }
    }
    const auto took = std::chrono::duration<double>(std::chrono::steady_clock::now() - started);
    std::cout << ran << " schedules from seed " << first << " in " << took.count() << " s\n";
}

}  // namespace
}  // namespace broadcaster::test
