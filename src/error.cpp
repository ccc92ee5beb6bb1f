#include <broadcaster/error.hpp>

#include <boost/asio/error.hpp>

#include <cstring>
#include <initializer_list>

namespace broadcaster {
namespace {

using boost::system::error_code;
using boost::system::error_condition;

// The conditions a code belongs to, its default one first.
struct condition_set {
    condition first{};
    condition second{};
    int count = 0;

    condition_set() = default;
    condition_set(condition a) : first(a), count(1) {}
    condition_set(condition a, condition b) : first(a), second(b), count(2) {}

    bool contains(int value) const noexcept {
        return (count > 0 && static_cast<int>(first) == value) ||
               (count > 1 && static_cast<int>(second) == value);
    }
};

condition_set conditions_of(error e) noexcept {
    switch (e) {
        case error::invalid_url:
        case error::unknown_scheme:
        case error::backend_not_built:
        case error::history_not_supported:
        case error::patterns_not_supported:
        case error::backend_unavailable:
            return {condition::configuration};
        case error::not_connected:
        case error::receive_in_progress:
            return {condition::usage};
        case error::payload_too_large:
        case error::invalid_channel:
        case error::invalid_position:
            return {condition::invalid_request};
        case error::subscriber_overflow:
        case error::end_of_stream:
        case error::callback_failed:
        case error::history_gap:
            return {condition::subscription_ended};
        case error::authentication_failed:
            return {condition::configuration, condition::refused_by_broker};
        case error::subscription_refused:
            return {condition::subscription_ended, condition::refused_by_broker};
        case error::broker_error:
            return {condition::refused_by_broker};
        case error::timeout:
        case error::unreachable:
        case error::connection_lost:
        case error::reconnect_timeout:
        case error::cluster_unavailable:
            return {condition::transient};
        case error::protocol_error:
            break;
    }
    return {};
}

class category final : public boost::system::error_category {
  public:
    const char* name() const noexcept override { return "broadcaster"; }

    std::string message(int value) const override {
        switch (static_cast<error>(value)) {
            case error::invalid_url:
                return "invalid URL";
            case error::unknown_scheme:
                return "unknown URL scheme: no backend is registered for it";
            case error::backend_not_built:
                return "the backend for this URL scheme was not built";
            case error::not_connected:
                return "not connected: connect the broadcast first";
            case error::payload_too_large:
                return "payload too large for this backend";
            case error::invalid_channel:
                return "invalid channel name for this backend";
            case error::subscriber_overflow:
                return "subscriber queue overflowed";
            case error::end_of_stream:
                return "end of stream: the broadcast was disconnected";
            case error::receive_in_progress:
                return "another receive is already pending";
            case error::authentication_failed:
                return "authentication failed";
            case error::protocol_error:
                return "unexpected reply from the broker";
            case error::broker_error:
                return "the broker reported an error";
            case error::timeout:
                return "operation timed out";
            case error::callback_failed:
                return "the subscription's callback threw an exception";
            case error::unreachable:
                return "the broker could not be reached (address not resolved, connection "
                       "refused or no answer within the connect timeout)";
            case error::connection_lost:
                return "the connection to the broker was lost: the operation may or may not "
                       "have taken effect";
            case error::reconnect_timeout:
                return "the connection to the broker was not back within the operation's "
                       "timeout: nothing was sent";
            case error::cluster_unavailable:
                return "the cluster is unavailable: no broker answers for the channel";
            case error::history_not_supported:
                return "this backend keeps no history";
            case error::history_gap:
                return "events were lost: the history no longer reaches back to the position";
            case error::invalid_position:
                return "not a position of this backend";
            case error::subscription_refused:
                return "the broker refused a channel that was subscribed (its permissions changed)";
            case error::patterns_not_supported:
                return "this backend cannot subscribe to patterns";
            case error::backend_unavailable:
                return "the backend's client library could not be loaded";
        }
        return "unknown broadcaster error";
    }

    error_condition default_error_condition(int value) const noexcept override {
        const auto groups = conditions_of(static_cast<error>(value));
        if (groups.count == 0) {
            return {value, *this};
        }
        return make_error_condition(groups.first);
    }

    bool equivalent(int value, const error_condition& wanted) const noexcept override {
        if (wanted.category() != condition_category()) {
            return default_error_condition(value) == wanted;
        }
        return conditions_of(static_cast<error>(value)).contains(wanted.value());
    }
};

// Transport failures of the operating system and Asio: a broker that went away or is
// not there yet.
bool is_transient_transport_error(const error_code& code) noexcept {
    namespace errc = boost::system::errc;
    namespace asio_error = boost::asio::error;
    if (code == asio_error::eof || code == asio_error::host_not_found_try_again) {
        return true;
    }
    for (const auto e : {errc::connection_refused, errc::connection_reset, errc::connection_aborted,
                         errc::timed_out, errc::host_unreachable, errc::network_unreachable,
                         errc::network_down, errc::network_reset, errc::broken_pipe,
                         errc::not_connected, errc::resource_unavailable_try_again}) {
        if (code == e) {
            return true;
        }
    }
    // A TLS stream cut short (Asio's ssl::error::stream_truncated), compared by name so
    // the core needs no OpenSSL.
    return std::strcmp(code.category().name(), "asio.ssl.stream") == 0;
}

// A name that does not resolve, a service that does not exist, or a TLS handshake the
// server's certificate or protocol failed: the URL or the TLS options must change.
bool is_configuration_transport_error(const error_code& code) noexcept {
    namespace asio_error = boost::asio::error;
    return code == asio_error::host_not_found || code == asio_error::no_data ||
           code == asio_error::service_not_found || code == asio_error::socket_type_not_supported ||
           std::strcmp(code.category().name(), "asio.ssl") == 0;
}

class condition_category_impl final : public boost::system::error_category {
  public:
    const char* name() const noexcept override { return "broadcaster.condition"; }

    std::string message(int value) const override {
        switch (static_cast<condition>(value)) {
            case condition::transient:
                return "transient failure: retrying later may succeed";
            case condition::configuration:
                return "configuration error: fix the URL, credentials, options or build";
            case condition::refused_by_broker:
                return "the broker refused the operation";
            case condition::invalid_request:
                return "the channel or message cannot be carried by this backend";
            case condition::usage:
                return "the API was used in a way that cannot work now";
            case condition::subscription_ended:
                return "the subscription ended: it will receive nothing more";
        }
        return "unknown broadcaster condition";
    }

    // Codes of this library answer for themselves (category::equivalent); this
    // classifies the system and Asio codes that reach the app.
    bool equivalent(const error_code& code, int value) const noexcept override {
        if (code.category() == broadcaster::error_category()) {
            return false;
        }
        switch (static_cast<condition>(value)) {
            case condition::transient:
                return is_transient_transport_error(code);
            case condition::configuration:
                return is_configuration_transport_error(code);
            default:
                return false;
        }
    }
};

}  // namespace

const boost::system::error_category& error_category() noexcept {
    static const category instance;
    return instance;
}

const boost::system::error_category& condition_category() noexcept {
    static const condition_category_impl instance;
    return instance;
}

void throw_if_error(const boost::system::error_code& ec, const std::string& what) {
    if (ec) {
        throw boost::system::system_error(ec, what);
    }
}

}  // namespace broadcaster
