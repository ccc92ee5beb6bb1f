#include <broadcaster/error.hpp>

namespace broadcaster {
namespace {

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
                return "not connected to the broker";
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
        }
        return "unknown broadcaster error";
    }
};

}  // namespace

const boost::system::error_category& error_category() noexcept {
    static const category instance;
    return instance;
}

void throw_if_error(const boost::system::error_code& ec, const std::string& what) {
    if (ec) {
        throw boost::system::system_error(ec, what);
    }
}

}  // namespace broadcaster
