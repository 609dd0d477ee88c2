// KvClient's watch: one streamed POST on one member at a time, a check beside it that ends the
// stream when its member stops answering, and the stops other threads ask for.

#include "etcd/kv_client.h"

#include <nlohmann/json.hpp>

#include <condition_variable>
#include <thread>
#include <utility>

#include "etcd/gateway_json.h"
#include "etcd/member_http.h"
#include "etcd/watch_stream.h"

namespace smv::etcd {

struct KvClient::WatchEnd {
  Status status;               // OK: stopped, or ended by the receiver
  bool delivered = false;      // a batch reached the receiver: a new watch starts after it
  bool token_refused = false;  // etcd refused the token before anything was delivered
  bool member_failed = false;  // the next watch asks the next member
};

struct KvClient::WatchStops {
  bool stopped = false;      // StopWatch
  bool interrupted = false;  // InterruptWatch
  bool hung = false;         // the check found the member not answering
  bool completed = false;    // the HTTP exchange completed (etcd ended the stream)
  httplib::Error error = httplib::Error::Success;
  int http_status = 0;
};

Status KvClient::Watch(std::string_view prefix, int64_t start_revision, const WatchReceiver& receive) {
  if (options_.endpoints.empty()) return EtcdUnavailable("no member configured");
  // Until a batch is delivered, a watch whose member failed or refused the token starts again at
  // once: on the next member, or with a new token.
  bool token_renewed = false;
  for (size_t failed = 0;;) {
    if (!options_.user.empty() && token_.empty()) SMV_RETURN_IF_ERROR(Authenticate(std::nullopt));
    WatchEnd end = WatchOnce(prefix, start_revision, receive);
    if (end.token_refused && !token_renewed) {
      token_renewed = true;
      token_.clear();
      continue;
    }
    if (end.member_failed) Rotate();
    if (end.status.ok() || end.delivered || !end.member_failed || ++failed >= options_.endpoints.size()) {
      return end.status;
    }
  }
}

KvClient::WatchEnd KvClient::WatchOnce(std::string_view prefix, int64_t start_revision, const WatchReceiver& receive) {
  const Endpoint& member = options_.endpoints[preferred_];
  std::unique_ptr<httplib::Client> http = MemberClient(member, options_.tls);
  http->set_connection_timeout(options_.connect_timeout);
  // A quiet book sends nothing for hours: the stream is ended by StopWatch or by the check of its
  // member, not by a timeout.
  http->set_read_timeout(std::chrono::hours(24));
  if (!BeginWatch(http.get())) return {};
  httplib::Request request = WatchRequest(prefix, start_revision, token_);
  WatchStream stream(MemberName(member), start_revision, receive);
  request.content_receiver = [&stream](const char* data, size_t size, uint64_t, uint64_t) {
    return stream.Feed(data, size);
  };
  std::jthread check = CheckWatchedMemberEvery(member, prefix);
  httplib::Response response;
  httplib::Error error = httplib::Error::Success;
  const bool completed = http->send(request, response, error);
  WatchStops stops = FinishWatch();
  check = {};  // stops and joins the check
  stops.completed = completed;
  stops.error = error;
  stops.http_status = response.status;
  return JudgeWatchEnd(stream, stops, member);
}

bool KvClient::BeginWatch(httplib::Client* http) {
  std::scoped_lock lock(watch_mu_);
  if (watch_stopped_) return false;
  watching_ = http;
  watch_interrupted_ = watched_member_hung_ = false;
  ++watch_generation_;
  return true;
}

KvClient::WatchStops KvClient::FinishWatch() {
  std::scoped_lock lock(watch_mu_);
  watching_ = nullptr;
  return {.stopped = watch_stopped_,
          .interrupted = std::exchange(watch_interrupted_, false),
          .hung = std::exchange(watched_member_hung_, false)};
}

KvClient::WatchEnd KvClient::JudgeWatchEnd(const WatchStream& stream, const WatchStops& stops,
                                           const Endpoint& member) const {
  WatchEnd end{.delivered = stream.delivered(), .token_refused = stream.token_refused()};
  if (stops.stopped || stops.interrupted || (!stream.receiving() && stream.ended().ok())) return end;
  end.member_failed = true;
  if (stops.hung) {
    end.status = EtcdUnavailable(fmt::format("{}: the watched member stopped answering (no answer to a read in {} ms)",
                                             MemberName(member), options_.request_timeout.count()));
  } else if (!stream.ended().ok()) {
    end.status = stream.ended();
    end.member_failed = end.status.code() == Code::kUnavailable;
  } else if (!stops.completed) {
    end.status =
        EtcdUnavailable(fmt::format("{}: the watch broke: {}", MemberName(member), httplib::to_string(stops.error)));
  } else {
    end.status = EtcdUnavailable(fmt::format("{}: the watch ended (HTTP {})", MemberName(member), stops.http_status));
  }
  return end;
}

std::jthread KvClient::CheckWatchedMemberEvery(const Endpoint& member, std::string_view prefix) {
  if (options_.watch_check_interval.count() <= 0) return {};
  // The check reads the watched key itself: a linearizable read, which a member cut off from the
  // quorum cannot answer either.
  const nlohmann::json probe = {{"key", Base64(prefix)}, {"limit", "1"}, {"keys_only", true}};
  return std::jthread([this, member, token = token_, probe = probe.dump()](std::stop_token stop) {
    CheckWatchedMember(stop, member, token, probe);
  });
}

void KvClient::CheckWatchedMember(std::stop_token stop, Endpoint member, std::string token, std::string probe) {
  std::mutex mu;
  std::condition_variable_any wake;
  std::unique_lock lock(mu);
  const Post read{.path = "/v3/kv/range", .body = probe, .token = token};
  while (!wake.wait_for(lock, stop, options_.watch_check_interval, [] { return false; }) && !stop.stop_requested()) {
    const Reply reply = PostOnce(member, options_.tls, read, options_.connect_timeout, options_.request_timeout);
    // Any answer but a member's own failure (5xx) shows it alive: a refused token does not end
    // the stream, which etcd checked once at its start.
    if (reply.answered && reply.status < 500) continue;
    if (stop.stop_requested()) return;
    EndWatch(WatchStop::kMemberHung);
    return;
  }
}

void KvClient::InterruptWatch() { EndWatch(WatchStop::kOnce); }

void KvClient::StopWatch() { EndWatch(WatchStop::kForGood); }

void KvClient::EndWatch(WatchStop why) {
  // A stop that comes before the request is on the wire does nothing to it: ask again until the
  // Watch it was meant for has returned.
  std::unique_lock lock(watch_mu_);
  if (why == WatchStop::kForGood) watch_stopped_ = true;
  const uint64_t generation = watch_generation_;
  const auto until = SteadyClock::now() + std::chrono::seconds(5);
  while (watching_ != nullptr && watch_generation_ == generation && SteadyClock::now() < until) {
    (why == WatchStop::kMemberHung ? watched_member_hung_ : watch_interrupted_) = true;
    watching_->stop();
    lock.unlock();
    std::this_thread::sleep_for(Millis(10));
    lock.lock();
  }
}

}  // namespace smv::etcd
