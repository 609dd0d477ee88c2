// KvClient's calls: one POST tried on member after member (send once, classify the reply, pass
// over to the next member) and the key-value and lease calls built on it. The watch is in
// watch.cc, one POST and its reply's meaning in member_http.cc, the JSON in gateway_json.cc.

#include "etcd/kv_client.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <thread>
#include <utility>

#include "etcd/gateway_json.h"
#include "etcd/member_http.h"

namespace smv::etcd {
namespace {

using nlohmann::json;

constexpr Millis kPauseAfterEveryMemberFailed{100};
constexpr const char* kAuthenticatePath = "/v3/auth/authenticate";
// How long every member in turn may refuse connections before a call gives up: long enough to
// ride out a member's restart (a one-member cluster's too), short against a partition's refusal.
constexpr Millis kUnreachableGrace{3000};

// What the call does after one attempt.
struct Verdict {
  enum class Next { kReturnAnswer, kRenewToken, kReturnError, kNextMember };
  Next next = Next::kNextMember;
  Status error;         // kReturnError: the call's error
  bool rotate = false;  // kReturnError: the member failed, the next call asks the next one
};

}  // namespace

struct KvClient::CallRequest {
  const std::string& path;
  const std::string& body;
  bool idempotent = true;
  bool authenticating = false;  // the token's own request: sent without one
};

struct KvClient::CallProgress {
  explicit CallProgress(size_t member_count)
      : members(member_count),
        last_error(member_count == 0 ? "no member configured" : "no time left to ask a member") {}

  // Members that could not even be connected to, one after the other. Once that is every
  // member, for kUnreachableGrace, this host is cut off from the cluster (or it is down): waiting
  // out the deadline would only delay the refusal; the next call asks again. A member that
  // answers or takes the request (as during an election) ends the streak and keeps the call
  // going to its deadline. True when the call should end now.
  bool CutOff(bool unreachable, SteadyClock::time_point attempt_began) {
    if (!unreachable) {
      unreachable_in_a_row = 0;
      return false;
    }
    if (unreachable_in_a_row++ == 0) unreachable_since = attempt_began;
    return unreachable_in_a_row >= members && SteadyClock::now() - unreachable_since >= kUnreachableGrace;
  }

  const size_t members;
  size_t unreachable_in_a_row = 0;
  SteadyClock::time_point unreachable_since;
  size_t failed = 0;  // attempts that failed
  bool token_renewed = false;
  SteadyClock::time_point until;  // the call's deadline
  std::string last_error;         // why the last member failed
};

namespace {

// What one reply means for its call (no I/O). `may_renew_token`: a refused token may be renewed
// and the request sent again.
Verdict Classify(const Reply& reply, const std::string& path, bool idempotent, bool may_renew_token,
                 const ClientOptions& options, const Endpoint& member) {
  using Next = Verdict::Next;
  if (reply.answered && reply.status == 200) return {.next = Next::kReturnAnswer};
  // An expired token, or one a restarted member forgot, is refused before anything is proposed.
  if (reply.answered && reply.status == 401 && may_renew_token) return {.next = Next::kRenewToken};
  if (reply.answered) {
    Status refused = Refusal(reply, path, options);
    if (!refused.ok()) return {.next = Next::kReturnError, .error = std::move(refused)};
  }
  // The member failed. A transaction that may have been applied is never sent again.
  if (!idempotent && reply.sent) {
    return {
        .next = Next::kReturnError,
        .error = EtcdUnavailable(fmt::format("{} took the request but gave no answer in {} ms; its outcome is unknown",
                                             reply.member, reply.waited.count())),
        .rotate = true};
  }
  if (!idempotent && reply.answered) {
    return {.next = Next::kReturnError,
            .error = EtcdUnavailable(Describe(reply, options, member) + "; outcome unknown"),
            .rotate = true};
  }
  return {.next = Next::kNextMember};
}

}  // namespace

KvClient::KvClient(ClientOptions options) : options_(std::move(options)) {}
KvClient::~KvClient() = default;

const Endpoint& KvClient::preferred() const { return options_.endpoints.at(preferred_); }

void KvClient::Rotate() { preferred_ = (preferred_ + 1) % options_.endpoints.size(); }

Result<std::string> KvClient::Call(const std::string& path, const std::string& body, bool idempotent,
                                   Deadline deadline) {
  const CallRequest call{
      .path = path, .body = body, .idempotent = idempotent, .authenticating = path == kAuthenticatePath};
  CallProgress progress(options_.endpoints.size());
  progress.until = SteadyClock::now() + deadline.value_or(options_.deadline);
  if (!options_.user.empty() && token_.empty() && !call.authenticating) {
    SMV_RETURN_IF_ERROR(Authenticate(TimeLeft(progress.until)));
  }
  while (SteadyClock::now() < progress.until && !options_.endpoints.empty()) {
    const Endpoint& member = options_.endpoints[preferred_];
    const Millis left = TimeLeft(progress.until);
    const auto attempt_began = SteadyClock::now();
    Reply reply = SendOnce(member, call, left);
    const bool may_renew_token = !call.authenticating && !options_.user.empty() && !progress.token_renewed;
    Verdict verdict = Classify(reply, path, idempotent, may_renew_token, options_, member);
    switch (verdict.next) {
      case Verdict::Next::kReturnAnswer: return std::move(reply.body);
      case Verdict::Next::kRenewToken:
        progress.token_renewed = true;
        token_.clear();
        SMV_RETURN_IF_ERROR(Authenticate(TimeLeft(progress.until)));
        break;
      case Verdict::Next::kReturnError:
        if (verdict.rotate) Rotate();
        return verdict.error;
      case Verdict::Next::kNextMember:
        SMV_RETURN_IF_ERROR(PassOver(reply, member, left, attempt_began, progress));
        break;
    }
  }
  return EtcdUnavailable(progress.last_error);
}

Reply KvClient::SendOnce(const Endpoint& member, const CallRequest& call, Millis left) const {
  return PostOnce(member, options_.tls,
                  {.path = call.path,
                   .body = call.body,
                   .token = call.authenticating ? std::string_view() : std::string_view(token_)},
                  std::min(options_.connect_timeout, left), std::min(options_.request_timeout, left));
}

Status KvClient::PassOver(const Reply& reply, const Endpoint& member, Millis left,
                          SteadyClock::time_point attempt_began, CallProgress& progress) {
  Rotate();  // the rest of this call and the calls after it ask the next member
  progress.last_error = Describe(reply, options_, member);
  // A connect the call's own deadline cut short says nothing about the member.
  const bool cut_short = reply.error == httplib::Error::ConnectionTimeout && left < options_.connect_timeout;
  if (progress.CutOff(Unreachable(reply) && !cut_short, attempt_began)) {
    return EtcdUnavailable(fmt::format("{}; no member reachable", progress.last_error));
  }
  if (++progress.failed % progress.members == 0) {
    // Every member failed once: pause before asking them all again.
    std::this_thread::sleep_for(std::min(kPauseAfterEveryMemberFailed, TimeLeft(progress.until)));
  }
  return OkStatus();
}

Result<json> KvClient::CallJson(const std::string& path, const json& request, bool idempotent, Deadline deadline) {
  auto body = Call(path, request.dump(-1, ' ', false, json::error_handler_t::replace), idempotent, deadline);
  if (!body.ok()) return body.status();
  return ParseAnswer(*body);
}

Status KvClient::Authenticate(Deadline deadline) {
  const json request = {{"name", options_.user}, {"password", options_.password}};
  auto answer = CallJson(kAuthenticatePath, request, true, deadline);
  if (!answer.ok()) {
    if (answer.status().code() == Code::kUnavailable) return answer.status();
    return PermissionDenied(fmt::format("etcd refused the credentials of {} \"{}\": {}", options_.names.user,
                                        options_.user, answer.status().message()));
  }
  Result<std::string> token = ReadString(*answer, "token");
  if (!token.ok()) return token.status();
  if (token->empty()) return Internal("etcd answered the authentication without a token");
  token_ = std::move(token).value();
  return OkStatus();
}

Result<RangeResult> KvClient::Get(std::string_view key, Deadline deadline) {
  return Range({{"key", Base64(key)}}, deadline);
}

namespace {

// Every key that starts with `prefix`, at most `limit` (0: all). etcd wants a key: every key is
// the range from "\0" to "\0".
json PrefixRange(std::string_view prefix, int64_t limit) {
  const std::string key = prefix.empty() ? std::string(1, '\0') : std::string(prefix);
  json request = {{"key", Base64(key)}, {"range_end", Base64(PrefixEnd(prefix))}};
  if (limit > 0) request["limit"] = std::to_string(limit);
  return request;
}

}  // namespace

Result<RangeResult> KvClient::GetPrefix(std::string_view prefix, int64_t limit, int64_t revision, Deadline deadline) {
  json request = PrefixRange(prefix, limit);
  if (revision > 0) request["revision"] = std::to_string(revision);
  return Range(request, deadline);
}

Result<RangeResult> KvClient::GetPrefixKeys(std::string_view prefix, int64_t limit, Deadline deadline) {
  json request = PrefixRange(prefix, limit);
  request["keys_only"] = true;
  return Range(request, deadline);
}

Result<RangeResult> KvClient::Range(const json& request, Deadline deadline) {
  auto answer = CallJson("/v3/kv/range", request, true, deadline);
  if (!answer.ok()) return answer.status();
  return DecodeRange(*answer);
}

Result<TxnResult> KvClient::Commit(const Txn& txn, Deadline deadline) {
  auto answer = CallJson("/v3/kv/txn", EncodeTxn(txn), false, deadline);
  if (!answer.ok()) return answer.status();
  return DecodeTxn(*answer);
}

Result<int64_t> KvClient::GrantLease(std::chrono::seconds ttl, Deadline deadline) {
  // Sent again when its answer is lost: the lease nobody heard of expires by itself.
  auto answer = CallJson("/v3/lease/grant", {{"TTL", std::to_string(ttl.count())}}, true, deadline);
  if (!answer.ok()) return answer.status();
  Result<int64_t> id = ReadInt64(*answer, "ID");
  if (!id.ok() || *id != 0) return id;
  Result<std::string> error = ReadString(*answer, "error");
  return Internal(fmt::format("etcd granted no lease: {}", error.ok() && !error->empty() ? *error : answer->dump()));
}

Status KvClient::KeepLeaseAlive(int64_t lease, Deadline deadline) {
  // The gateway's keepalive stream answers one request with one line and ends.
  auto answer = CallJson("/v3/lease/keepalive", {{"ID", std::to_string(lease)}}, true, deadline);
  if (!answer.ok()) return answer.status();
  Result<const json*> result = ReadObject(*answer, "result");
  if (!result.ok()) return result.status();
  Result<int64_t> ttl = ReadInt64(**result, "TTL");
  if (!ttl.ok()) return ttl.status();
  if (*ttl <= 0) return NotFound(fmt::format("etcd lease {:x} has expired", lease));
  return OkStatus();
}

Result<int64_t> KvClient::LeaseTimeToLive(int64_t lease, Deadline deadline) {
  auto answer = CallJson("/v3/lease/timetolive", {{"ID", std::to_string(lease)}}, true, deadline);
  if (!answer.ok()) return answer.status();
  Result<int64_t> ttl = ReadInt64(*answer, "TTL");
  if (ttl.ok() && *ttl < 0) return NotFound(fmt::format("etcd lease {:x} has expired", lease));
  return ttl;
}

Status KvClient::RevokeLease(int64_t lease, Deadline deadline) {
  auto answer = CallJson("/v3/lease/revoke", {{"ID", std::to_string(lease)}}, true, deadline);
  if (!answer.ok() && answer.status().code() != Code::kNotFound) return answer.status();
  return OkStatus();
}

}  // namespace smv::etcd
