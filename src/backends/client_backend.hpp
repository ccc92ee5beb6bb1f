#pragma once

// What the network backends (Redis, Postgres, Kafka) share: the backend object the
// broadcast owns holds one client, shared with the client's pending operations, so
// destroying the backend only asks the client to stop.

#include "../completion.hpp"

#include <broadcaster/backend.hpp>
#include <broadcaster/error.hpp>

#include <boost/asio/post.hpp>

#include <memory>
#include <utility>

namespace broadcaster::detail {

// `Client` has connect(handler), disconnect(handler) and stop().
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
        client_ = make_client();
        client_->connect(std::move(handler));
    }

    void async_disconnect(completion_handler handler) final {
        if (!client_) {
            complete(handler, {});
            return;
        }
        std::exchange(client_, nullptr)->disconnect(std::move(handler));
    }

  protected:
    // A new client for a connect, on executor() and reporting to weak_sink().
    virtual std::shared_ptr<Client> make_client() = 0;

    // The client; null (and `handler` completed with not_connected) before connect or
    // after disconnect.
    Client* connected_client(completion_handler& handler) {
        if (!client_) {
            complete(handler, error::not_connected);
        }
        return client_.get();
    }

    // The client, or null; for operations that have nothing to do without one.
    Client* client() const noexcept { return client_.get(); }

    void complete(completion_handler& handler, boost::system::error_code ec) {
        post_completion(std::move(handler), executor(), ec);
    }

  private:
    std::shared_ptr<Client> client_;
};

}  // namespace broadcaster::detail
