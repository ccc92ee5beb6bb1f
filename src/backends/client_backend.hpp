#pragma once

// What the network backends (Redis, Postgres, Kafka) share: the backend object the
// broadcast owns holds one client, shared with the client's pending operations, so
// destroying the backend only asks the client to stop. A disconnect completes once the
// client is gone: its connections are closed and every handler it held has run or been
// destroyed (what broadcast::async_shutdown waits for).

#include "../completion.hpp"

#include <broadcaster/backend.hpp>
#include <broadcaster/error.hpp>

#include <boost/asio/post.hpp>

#include <memory>
#include <string>
#include <utility>

namespace broadcaster::detail {

// `Client` has connect(handler), disconnect(handler), stop(), and subscribe(channel,
// handler) and unsubscribe(channel, handler).
template <typename Client>
class client_backend : public backend {
  public:
    ~client_backend() override {
        if (client_) {
            boost::asio::post(executor(), [client = client_] { client->stop(); });
        }
    }

    void async_connect(completion_handler handler) final {
        if (client_) {
            client_->stop();
        }
        client_ = track(make_client());
        client_->connect(std::move(handler));
    }

    void async_disconnect(completion_handler handler) final {
        if (!client_) {
            complete(handler, {});
            return;
        }
        auto client = std::exchange(client_, nullptr);
        std::exchange(gone_, nullptr)->handler.swap(handler);
        // The client's own disconnect handler keeps it until that completes, so the
        // client (and with it `handler`'s wait) ends after its disconnect.
        auto* raw = client.get();
        raw->disconnect([keep = std::move(client)](boost::system::error_code) {});
    }

    // Refused before anything is sent without a connection, or for a channel the
    // broker cannot carry.
    void async_subscribe(std::string channel, completion_handler handler) override {
        if (auto* c = checked_client(channel, handler)) {
            c->subscribe(std::move(channel), std::move(handler));
        }
    }

    // Nothing to undo without a client, or for a channel the broker cannot carry.
    void async_unsubscribe(std::string channel, completion_handler handler) override {
        if (auto* c = client(); c && carries(channel)) {
            c->unsubscribe(std::move(channel), std::move(handler));
        } else {
            complete(handler, {});
        }
    }

  protected:
    // A new client for a connect, on executor() and reporting to weak_sink().
    virtual std::unique_ptr<Client> make_client() = 0;

    // The client; null (and `handler` completed with not_connected) before connect or
    // after disconnect.
    Client* connected_client(completion_handler& handler) {
        if (!client_) {
            complete(handler, error::not_connected);
        }
        return client_.get();
    }

    // Whether the broker can carry `channel` (a channel name, a topic, a subject);
    // backends with naming rules override it.
    virtual bool carries(const std::string& /*channel*/) const { return true; }

    // The client, or null (the handler completed with the reason) when there is no
    // connection or the broker cannot carry `channel`: refused before anything is sent.
    Client* checked_client(const std::string& channel, completion_handler& handler) {
        auto* client = connected_client(handler);
        if (client && !carries(channel)) {
            complete(handler, error::invalid_channel);
            return nullptr;
        }
        return client;
    }

    // The client, or null; for operations that have nothing to do without one.
    Client* client() const noexcept { return client_.get(); }

    void complete(completion_handler& handler, boost::system::error_code ec) {
        post_completion(std::move(handler), executor(), ec);
    }

  private:
    // Completes a disconnect's handler, if one was given, once the client it waits for
    // has been destroyed and the backend no longer refers to it.
    struct client_gone {
        explicit client_gone(boost::asio::any_io_executor executor)
            : executor(std::move(executor)) {}
        client_gone(const client_gone&) = delete;
        client_gone& operator=(const client_gone&) = delete;
        ~client_gone() {
            if (handler) {
                post_completion(std::move(handler), executor, boost::system::error_code());
            }
        }
        const boost::asio::any_io_executor executor;
        completion_handler handler;
    };

    // Shares `client` with a deleter that tells `gone_` when the last reference is gone.
    std::shared_ptr<Client> track(std::unique_ptr<Client> client) {
        gone_ = std::make_shared<client_gone>(executor());
        return std::shared_ptr<Client>(client.release(), [gone = gone_](Client* c) mutable {
            delete c;
            gone.reset();  // now, not when the last weak reference to the client goes
        });
    }

    std::shared_ptr<Client> client_;
    std::shared_ptr<client_gone> gone_;  // of `client_`
};

}  // namespace broadcaster::detail
