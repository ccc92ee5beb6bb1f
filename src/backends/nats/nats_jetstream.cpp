#include "nats_jetstream.hpp"

#include <broadcaster/error.hpp>

#include <algorithm>
#include <cstring>
#include <limits>

namespace broadcaster::detail {
namespace {

using boost::system::error_code;

error_code js_error(natsStatus s) {
    switch (s) {
        case NATS_TIMEOUT:
            return error::timeout;
        case NATS_CONNECTION_CLOSED:
        case NATS_CONNECTION_DISCONNECTED:
            return error::connection_lost;
        default:
            return error::broker_error;  // no JetStream (no responders), refused, ...
    }
}

jsOptions request_options(const nats_config& config) {
    jsOptions opts;
    natsc().jsOptions_Init(&opts);
    opts.Wait = std::max<int64_t>(1, config.connect_timeout.count());
    return opts;
}

struct stream_info_deleter {
    void operator()(jsStreamInfo* si) const { natsc().jsStreamInfo_Destroy(si); }
};
using stream_info_ptr = std::unique_ptr<jsStreamInfo, stream_info_deleter>;

struct msg_deleter {
    void operator()(natsMsg* m) const { natsc().natsMsg_Destroy(m); }
};
using msg_ptr = std::unique_ptr<natsMsg, msg_deleter>;

struct subscription_deleter {
    void operator()(natsSubscription* sub) const {
        natsc().natsSubscription_Unsubscribe(sub);  // deletes the ephemeral consumer
        natsc().natsSubscription_Destroy(sub);
    }
};
using subscription_ptr = std::unique_ptr<natsSubscription, subscription_deleter>;

bool equals(const char* a, const std::string& b) {
    return a != nullptr && b == a;
}

std::string stored_pattern(const nats_config& config) {
    return config.stored_subject(">");
}

std::string live_pattern(const nats_config& config) {
    return config.live_prefix() + ">";
}

std::string data_of(natsMsg* m) {
    const char* data = natsc().natsMsg_GetData(m);
    const int length = natsc().natsMsg_GetDataLength(m);
    return data == nullptr || length <= 0 ? std::string()
                                          : std::string(data, static_cast<std::size_t>(length));
}

// Whether `after` is a position of `channel` the stream still keeps: no error; else
// why not.
error_code check_kept(jsCtx* js, const nats_config& config, const std::string& channel,
                      std::uint64_t after) {
    auto opts = request_options(config);
    natsMsg* raw = nullptr;
    jsErrCode jerr{};
    const natsStatus s = natsc().js_GetMsg(&raw, js, config.stream.c_str(), after, &opts, &jerr);
    msg_ptr m(raw);
    if (s == NATS_OK) {
        return equals(natsc().natsMsg_GetSubject(m.get()), config.stored_subject(channel))
                   ? error_code()
                   : error_code(error::invalid_position);
    }
    if (s != NATS_NOT_FOUND && jerr != JSNoMessageFoundErr) {
        return js_error(s);
    }
    jsStreamInfo* si_raw = nullptr;
    const natsStatus info =
        natsc().js_GetStreamInfo(&si_raw, js, config.stream.c_str(), &opts, &jerr);
    stream_info_ptr si(si_raw);
    if (info != NATS_OK) {
        return js_error(info);
    }
    // Later than anything the stream had (or a stream made again since): not one of ours.
    return after > si->State.LastSeq ? error_code(error::invalid_position)
                                     : error_code(error::history_gap);
}

}  // namespace

js_context make_js_context(natsConnection* nc) {
    jsCtx* js = nullptr;
    if (natsc().natsConnection_JetStream(&js, nc, nullptr) != NATS_OK) {
        return nullptr;
    }
    return js_context(js);
}

error_code ensure_stream(jsCtx* js, const nats_config& config) {
    auto opts = request_options(config);
    const auto stored = stored_pattern(config);
    const auto live = live_pattern(config);
    jsStreamInfo* raw = nullptr;
    jsErrCode jerr{};
    natsStatus s = natsc().js_GetStreamInfo(&raw, js, config.stream.c_str(), &opts, &jerr);
    stream_info_ptr si(raw);
    if (s == NATS_OK) {
        const auto* c = si->Config;
        const bool stores = c != nullptr && std::any_of(c->Subjects, c->Subjects + c->SubjectsLen,
                                                        [&](const char* subject) {
                                                            return equals(subject, stored);
                                                        });
        const bool republishes =
            c != nullptr && c->RePublish != nullptr && equals(c->RePublish->Source, stored) &&
            equals(c->RePublish->Destination, live) && !c->RePublish->HeadersOnly;
        return stores && republishes ? error_code() : error_code(error::broker_error);
    }
    if (s != NATS_NOT_FOUND && jerr != JSStreamNotFoundErr) {
        return js_error(s);
    }
    jsStreamConfig cfg;
    natsc().jsStreamConfig_Init(&cfg);
    const char* subjects[] = {stored.c_str()};
    cfg.Name = config.stream.c_str();
    cfg.Subjects = subjects;
    cfg.SubjectsLen = 1;
    cfg.MaxMsgsPerSubject = config.history;
    cfg.Storage = js_FileStorage;
    cfg.Discard = js_DiscardOld;
    jsRePublish republish;
    natsc().jsRePublish_Init(&republish);
    republish.Source = stored.c_str();
    republish.Destination = live.c_str();
    cfg.RePublish = &republish;
    raw = nullptr;
    // Made by another broadcast meanwhile: the same configuration is no error.
    s = natsc().js_AddStream(&raw, js, &cfg, &opts, &jerr);
    si.reset(raw);
    return s == NATS_OK ? error_code() : js_error(s);
}

js_read read_history(jsCtx* js, const nats_config& config, const std::string& channel,
                     std::optional<std::uint64_t> after, std::size_t limit) {
    js_read out;
    auto opts = request_options(config);
    const auto subject = config.stored_subject(channel);
    // An ephemeral pull consumer of the channel's subject, from `after` itself (so that
    // a trim racing the read shows: see below) or from the oldest message.
    jsSubOptions sub_opts;
    natsc().jsSubOptions_Init(&sub_opts);
    sub_opts.Stream = config.stream.c_str();
    sub_opts.Config.AckPolicy = js_AckNone;
    sub_opts.Config.InactiveThreshold = std::int64_t{60} * 1'000'000'000;
    sub_opts.Config.MemoryStorage = true;
    if (after && *after > 0) {
        sub_opts.Config.DeliverPolicy = js_DeliverByStartSequence;
        sub_opts.Config.OptStartSeq = *after;
    } else {
        sub_opts.Config.DeliverPolicy = js_DeliverAll;
    }
    natsSubscription* raw = nullptr;
    jsErrCode jerr{};
    natsStatus s =
        natsc().js_PullSubscribe(&raw, js, subject.c_str(), nullptr, &opts, &sub_opts, &jerr);
    if (s != NATS_OK) {
        out.ec = js_error(s);
        return out;
    }
    subscription_ptr sub(raw);
    // How many there are to read (a fetch when there are none would wait its timeout).
    jsConsumerInfo* info = nullptr;
    s = natsc().natsSubscription_GetConsumerInfo(&info, sub.get(), &opts, &jerr);
    if (s != NATS_OK) {
        out.ec = js_error(s);
        return out;
    }
    std::uint64_t remaining = info->NumPending;
    natsc().jsConsumerInfo_Destroy(info);
    // After a position, `limit` is a bound (the core asks for last + 1 to tell a gap):
    // `after` itself and `limit` more are enough, however far behind the position is.
    const bool bounded = after && *after > 0 && limit != 0;
    const std::uint64_t wanted = bounded ? limit + 1 : std::numeric_limits<std::uint64_t>::max();
    while (remaining > 0 && out.messages.size() < wanted) {
        jsFetchRequest request;
        natsc().jsFetchRequest_Init(&request);
        request.Batch = static_cast<int>(
            std::min<std::uint64_t>({remaining, wanted - out.messages.size(), 512}));
        request.NoWait = true;
        request.Expires = opts.Wait * 1'000'000;
        natsMsgList list{};
        s = natsc().natsSubscription_FetchRequest(&list, sub.get(), &request);
        if (s == NATS_NOT_FOUND || (s == NATS_TIMEOUT && list.Count == 0)) {
            natsc().natsMsgList_Destroy(&list);
            break;  // nothing more
        }
        if (s != NATS_OK) {
            natsc().natsMsgList_Destroy(&list);
            out.ec = js_error(s);
            return out;
        }
        std::uint64_t pending = 0;
        for (int i = 0; i < list.Count; ++i) {
            jsMsgMetaData* meta = nullptr;
            if (natsc().natsMsg_GetMetaData(&meta, list.Msgs[i]) != NATS_OK) {
                continue;
            }
            out.messages.push_back({meta->Sequence.Stream, data_of(list.Msgs[i])});
            pending = meta->NumPending;
            natsc().jsMsgMetaData_Destroy(meta);
        }
        const bool empty = list.Count == 0;
        natsc().natsMsgList_Destroy(&list);
        if (empty) {
            break;
        }
        remaining = pending;  // counts what was stored since the read began, too
    }
    sub.reset();
    if (after && *after > 0) {
        // Trims delete a subject's oldest messages first: if `after` is still kept now,
        // nothing after it was deleted before the read. Not kept: some may have been.
        out.ec = check_kept(js, config, channel, *after);
        if (out.ec && out.ec != error::history_gap) {
            out.messages.clear();
            return out;
        }
        std::erase_if(out.messages, [&](const js_message& m) { return m.seq <= *after; });
    }
    if (limit != 0 && out.messages.size() > limit) {
        out.messages.erase(out.messages.begin(),
                           out.messages.end() - static_cast<std::ptrdiff_t>(limit));
    }
    return out;
}

js_last last_sequence(jsCtx* js, const nats_config& config, const std::string& channel) {
    js_last out;
    auto opts = request_options(config);
    natsMsg* raw = nullptr;
    jsErrCode jerr{};
    const natsStatus s = natsc().js_GetLastMsg(
        &raw, js, config.stream.c_str(), config.stored_subject(channel).c_str(), &opts, &jerr);
    msg_ptr m(raw);
    if (s == NATS_OK) {
        out.seq = natsc().natsMsg_GetSequence(m.get());
    } else if (s != NATS_NOT_FOUND && jerr != JSNoMessageFoundErr) {
        out.ec = js_error(s);
    }
    return out;
}

}  // namespace broadcaster::detail
