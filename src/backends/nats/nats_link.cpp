#include "nats_link.hpp"

#include <boost/asio/execution_context.hpp>
#include <boost/asio/query.hpp>

#include <atomic>
#include <unordered_map>
#include <vector>

namespace broadcaster::detail {
namespace {

// Every open link by id, for callbacks that may come after their client is gone.
struct link_table {
    std::mutex mutex;
    std::unordered_map<std::uint64_t, std::weak_ptr<nats_link>> links;
    std::uint64_t next_id = 0;
};

link_table& table() {
    static auto* t = new link_table;  // never destroyed: nats.c's threads outlive statics
    return *t;
}

}  // namespace

// Closes the links of an io_context when it shuts down, before its executors die.
class nats_link_service : public boost::asio::execution_context::service {
  public:
    using key_type = nats_link_service;
    static inline boost::asio::execution_context::id id;

    explicit nats_link_service(boost::asio::execution_context& context)
        : boost::asio::execution_context::service(context) {}

    void add(std::weak_ptr<nats_link> link) {
        std::lock_guard lock(mutex_);
        std::erase_if(links_, [](const auto& l) { return l.expired(); });
        links_.push_back(std::move(link));
    }

  private:
    void shutdown() override {
        std::vector<std::weak_ptr<nats_link>> links;
        {
            std::lock_guard lock(mutex_);
            links.swap(links_);
        }
        for (const auto& weak : links) {
            if (auto link = weak.lock()) {
                link->context_shutdown();
            }
        }
    }

    std::mutex mutex_;
    std::vector<std::weak_ptr<nats_link>> links_;
};

std::shared_ptr<nats_link> nats_link::make(boost::asio::any_io_executor strand,
                                           std::weak_ptr<nats_client> client,
                                           std::chrono::milliseconds backoff_min,
                                           std::chrono::milliseconds backoff_max) {
    std::shared_ptr<nats_link> link(new nats_link);
    link->backoff_min_ = backoff_min;
    link->backoff_max_ = backoff_max;
    auto& context = boost::asio::query(strand, boost::asio::execution::context);
    link->strand_ = std::move(strand);
    link->client_ = std::move(client);
    {
        auto& t = table();
        std::lock_guard lock(t.mutex);
        link->id_ = ++t.next_id;
        t.links.emplace(link->id_, link);
    }
    boost::asio::use_service<nats_link_service>(context).add(link);
    return link;
}

std::shared_ptr<nats_link> nats_link::find(std::uint64_t id) {
    auto& t = table();
    std::lock_guard lock(t.mutex);
    const auto found = t.links.find(id);
    return found == t.links.end() ? nullptr : found->second.lock();
}

nats_link::~nats_link() {
    close();
}

void nats_link::close() {
    {
        auto& t = table();
        std::lock_guard lock(t.mutex);
        t.links.erase(id_);
    }
    boost::asio::any_io_executor strand;
    {
        std::lock_guard lock(mutex_);
        strand.swap(strand_);
    }
    // `strand` goes here, outside the lock.
}

void nats_link::context_shutdown() {
    {
        std::lock_guard lock(mutex_);
        context_gone_ = true;
    }
    close();
}

bool nats_link::context_gone() const {
    std::lock_guard lock(mutex_);
    return context_gone_;
}

}  // namespace broadcaster::detail
