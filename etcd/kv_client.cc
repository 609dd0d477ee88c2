#include "etcd/kv_client.h"

#include <openssl/evp.h>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <charconv>
#include <condition_variable>
#include <thread>
#include <utility>

namespace smv::etcd {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr std::string_view kScheme = "etcd://";
constexpr int kMaxPort = 65535;
constexpr std::chrono::milliseconds kPauseAfterEveryMemberFailed{100};
constexpr const char* kAuthenticatePath = "/v3/auth/authenticate";
// How long every member in turn may refuse connections before a call gives up: long enough to
// ride out a member's restart (a one-member cluster's too), short against a partition's refusal.
constexpr std::chrono::milliseconds kUnreachableGrace{3000};

// Members that could not even be connected to, one after the other. Once that is every member,
// for kUnreachableGrace, this host is cut off from the cluster (or it is down): waiting out the
// deadline would only delay the refusal; the next call asks again. A member that answers or takes
// the request (as during an election) ends the streak and keeps the call going to its deadline.
class UnreachableStreak {
 public:
  explicit UnreachableStreak(size_t members) : members_(members) {}
  // True when the call should end now. `attempt_began`: when the failed attempt was made.
  bool Note(bool unreachable, Clock::time_point attempt_began) {
    if (!unreachable) {
      in_a_row_ = 0;
      return false;
    }
    if (in_a_row_++ == 0) since_ = attempt_began;
    return in_a_row_ >= members_ && Clock::now() - since_ >= kUnreachableGrace;
  }

 private:
  size_t members_;
  size_t in_a_row_ = 0;
  Clock::time_point since_;
};

// The gateway carries keys and values as base64 (proto bytes) and 64-bit numbers as strings.
std::string Base64(std::string_view raw) {
  std::string out(4 * ((raw.size() + 2) / 3), '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(raw.data()), static_cast<int>(raw.size()));
  out.resize(static_cast<size_t>(n));
  return out;
}

Result<std::string> Unbase64(const std::string& text) {
  if (text.size() % 4 != 0) return Internal(fmt::format("etcd answered a malformed base64 value \"{}\"", text));
  std::string out(3 * text.size() / 4, '\0');
  const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(text.data()), static_cast<int>(text.size()));
  if (n < 0) return Internal(fmt::format("etcd answered a malformed base64 value \"{}\"", text));
  // EVP_DecodeBlock counts the bytes that padding stands for.
  size_t padding = 0;
  for (auto it = text.rbegin(); it != text.rend() && *it == '=' && padding < 2; ++it) ++padding;
  out.resize(static_cast<size_t>(n) - padding);
  return out;
}

// proto3 JSON leaves out zero values and writes int64 as a string.
int64_t Int64(const json& object, const char* field) {
  auto it = object.find(field);
  if (it == object.end()) return 0;
  if (it->is_number_integer()) return it->get<int64_t>();
  if (!it->is_string()) return 0;
  const std::string& s = it->get_ref<const std::string&>();
  int64_t v = 0;
  std::from_chars(s.data(), s.data() + s.size(), v);
  return v;
}

Result<json> ParseAnswer(const std::string& body) {
  json answer = json::parse(body, nullptr, false);
  if (answer.is_discarded() || !answer.is_object()) {
    return Internal(fmt::format("etcd answered something that is not JSON: \"{}\"", body.substr(0, 200)));
  }
  return answer;
}

Result<KeyValue> DecodeKeyValue(const json& kv) {
  KeyValue out;
  auto key = Unbase64(kv.value("key", std::string()));
  if (!key.ok()) return key.status();
  auto value = Unbase64(kv.value("value", std::string()));
  if (!value.ok()) return value.status();
  out.key = std::move(key).value();
  out.value = std::move(value).value();
  out.create_revision = Int64(kv, "create_revision");
  out.mod_revision = Int64(kv, "mod_revision");
  out.version = Int64(kv, "version");
  out.lease = Int64(kv, "lease");
  return out;
}

// A string field of an answer, or `otherwise` (etcd's JSON is never trusted to have the type).
std::string StringField(const json& object, const char* field, std::string otherwise = "") {
  auto it = object.find(field);
  return it != object.end() && it->is_string() ? it->get<std::string>() : otherwise;
}

// The changes of one watch answer, in order.
Result<std::vector<WatchEvent>> DecodeEvents(const json& events) {
  std::vector<WatchEvent> batch;
  for (const json& event : events) {
    if (!event.is_object())
      return Internal(fmt::format("etcd answered a watch event that is not an object: {}", event.dump()));
    auto kv = DecodeKeyValue(event.value("kv", json::object()));
    if (!kv.ok()) return kv.status();
    batch.push_back({.deleted = StringField(event, "type") == "DELETE", .kv = std::move(kv).value()});
  }
  return batch;
}

json EncodeOp(const Op& op) {
  if (const auto* put = std::get_if<PutOp>(&op)) {
    json request = {{"key", Base64(put->key)}, {"value", Base64(put->value)}};
    if (put->lease != 0) request["lease"] = std::to_string(put->lease);
    return {{"request_put", std::move(request)}};
  }
  return {{"request_delete_range", {{"key", Base64(std::get<DeleteOp>(op).key)}}}};
}

json EncodeCompare(const Compare& c) {
  json out = {{"key", Base64(c.key)}, {"result", "EQUAL"}};
  switch (c.target) {
    case Compare::Target::kCreateRevision:
      out["target"] = "CREATE";
      out["create_revision"] = std::to_string(c.revision);
      break;
    case Compare::Target::kModRevision:
      out["target"] = "MOD";
      out["mod_revision"] = std::to_string(c.revision);
      break;
    case Compare::Target::kValue:
      out["target"] = "VALUE";
      out["value"] = Base64(c.value);
      break;
  }
  return out;
}

std::unique_ptr<httplib::Client> HttpClient(const Endpoint& e, const TlsFiles& tls) {
  if (!tls.enabled()) return std::make_unique<httplib::Client>(e.host, e.port);
  auto http =
      std::make_unique<httplib::Client>(fmt::format("https://{}:{}", e.host, e.port), tls.cert_file, tls.key_file);
  if (!tls.ca_file.empty()) http->set_ca_cert_path(tls.ca_file);
  http->enable_server_certificate_verification(true);
  return http;
}

Status UnavailableCluster(const std::string& detail) {
  return Unavailable(fmt::format("shared address store unavailable (etcd: {})", detail));
}

milliseconds Left(Clock::time_point until) {
  return std::max(milliseconds(0), std::chrono::duration_cast<milliseconds>(until - Clock::now()));
}

std::string MemberName(const Endpoint& e) { return fmt::format("{}:{}", e.host, e.port); }

// What one POST to one member came to.
struct Reply {
  std::string member;     // "host:port"
  bool answered = false;  // an HTTP answer came: `status` and `body`
  bool sent = false;      // no answer, but the request went out: its outcome is unknown
  int status = 0;
  std::string body;
  httplib::Error error = httplib::Error::Success;
  milliseconds waited{0};
};

// POSTs `body` to `path` on `e`, waiting at most `wait` for the answer.
Reply PostOnce(const Endpoint& e, const TlsFiles& tls, const std::string& path, const std::string& body,
               const std::string& token, milliseconds connect, milliseconds wait) {
  Reply reply{.member = MemberName(e)};
  std::unique_ptr<httplib::Client> http = HttpClient(e, tls);
  http->set_connection_timeout(connect);
  http->set_read_timeout(wait);
  http->set_write_timeout(wait);
  httplib::Request request;
  request.method = "POST";
  request.path = path;
  request.body = body;
  request.set_header("Content-Type", "application/json");
  if (!token.empty()) request.set_header("Authorization", token);
  // etcd's gateway sends every error answer chunked with a trailer, which this HTTP library
  // cannot parse (it reports a read error after the body). The body arrives through the
  // receiver first, so an error status with a body is still etcd's answer.
  request.content_receiver = [&reply](const char* data, size_t size, uint64_t, uint64_t) {
    reply.body.append(data, size);
    return true;
  };
  httplib::Response response;
  const auto sent_at = Clock::now();
  const bool received = http->send(request, response, reply.error);
  reply.waited = std::chrono::duration_cast<milliseconds>(Clock::now() - sent_at);
  reply.answered = received || (reply.error == httplib::Error::Read && response.status >= 400 && !reply.body.empty());
  reply.sent = !reply.answered && reply.error == httplib::Error::Read;
  reply.status = response.status;
  return reply;
}

// No connection was made: the request never went out.
bool Unreachable(const Reply& reply) {
  return !reply.answered && !reply.sent &&
         (reply.error == httplib::Error::Connection || reply.error == httplib::Error::ConnectionTimeout);
}

// etcd's error answer: {"error": "...", "message": "...", "code": gRPC code}.
struct EtcdError {
  std::string message;
  int64_t code = 0;
};
EtcdError ParseError(const std::string& body) {
  const json err = json::parse(body, nullptr, false);
  if (!err.is_object()) return {.message = body.substr(0, 200)};
  return {.message = StringField(err, "message", StringField(err, "error", body.substr(0, 200))),
          .code = Int64(err, "code")};
}

constexpr int64_t kGrpcNotFound = 5;
constexpr int64_t kGrpcResourceExhausted = 8;

// "etcdserver: mvcc: database space exceeded": the NOSPACE alarm is raised and etcd takes no
// write that adds data until an operator frees space and disarms it.
bool OutOfSpace(const EtcdError& err) {
  return err.message.find("database space exceeded") != std::string::npos ||
         (err.code == kGrpcResourceExhausted && err.message.find("space") != std::string::npos);
}

// What an answer other than 200 means: OK to go on to the next member (a member without quorum
// answers 503, one too far behind 429), or the call's error.
Status Refusal(const Reply& reply, const std::string& path, const ClientOptions& options) {
  const EtcdError err = ParseError(reply.body);
  if (OutOfSpace(err)) {
    return ResourceExhausted(fmt::format(
        "etcd is out of space (alarm NOSPACE, its --quota-backend-bytes is reached; {} refused {}: {}): compact "
        "and defragment it (etcdctl compact, etcdctl defrag), then `etcdctl alarm disarm`",
        reply.member, path, err.message));
  }
  // etcd answers a missing user (auth enabled) and wrong credentials with 400, not 401.
  if (reply.status == 401 || reply.status == 403 || err.message.find("user name is empty") != std::string::npos ||
      err.message.find("authentication failed") != std::string::npos) {
    return PermissionDenied(fmt::format("etcd {} refused {}{}: {}", reply.member, path,
                                        options.user.empty() ? fmt::format(" (it wants a user: {})", options.names.user)
                                                             : fmt::format(" to user \"{}\"", options.user),
                                        err.message));
  }
  if (err.message.find("CommonName") != std::string::npos) {
    return InvalidArgument(fmt::format(
        "etcd {} refused {}: {} (members that check client certificates want one without a Common Name from "
        "clients of their JSON gateway: issue {} without CN and name the user with {})",
        reply.member, path, err.message, options.names.cert_file, options.names.user));
  }
  if (err.code == kGrpcNotFound)
    return NotFound(fmt::format("etcd {} answered {}: {}", reply.member, path, err.message));
  if (reply.status < 500 && reply.status != 429) {
    return Internal(fmt::format("etcd {} refused {}: {}", reply.member, path, err.message));
  }
  return OkStatus();
}

// Why a member gave no usable answer, for the error once every member failed.
std::string Describe(const Reply& reply, const ClientOptions& options, const Endpoint& e) {
  if (reply.answered) return fmt::format("{}: {}", reply.member, ParseError(reply.body).message);
  if (reply.sent) return fmt::format("{}: no answer in {} ms", reply.member, reply.waited.count());
  std::string out = fmt::format("{}: {}", reply.member, httplib::to_string(reply.error));
  if (reply.error == httplib::Error::SSLConnection || reply.error == httplib::Error::SSLServerVerification ||
      reply.error == httplib::Error::SSLLoadingCerts) {
    out += fmt::format(
        " (TLS: the member's certificate must be signed by {} \"{}\" and name {}; a member started "
        "with --client-cert-auth wants {} and {} signed by its CA)",
        options.names.ca_file, options.tls.ca_file, e.host, options.names.cert_file, options.names.key_file);
  }
  return out;
}

// POST /v3/watch: every key under `prefix` from `start_revision` on.
httplib::Request WatchRequest(std::string_view prefix, int64_t start_revision, const std::string& token) {
  const json create = {{"create_request",
                        {{"key", Base64(prefix)},
                         {"range_end", Base64(PrefixEnd(prefix))},
                         {"start_revision", std::to_string(start_revision)}}}};
  httplib::Request request;
  request.method = "POST";
  request.path = "/v3/watch";
  request.body = create.dump();
  request.set_header("Content-Type", "application/json");
  if (!token.empty()) request.set_header("Authorization", token);
  return request;
}

// A canceled watch whose token etcd refused (expired, or forgotten by a restarted member).
bool TokenRefused(const std::string& reason) {
  return reason.find("Unauthenticated") != std::string::npos || reason.find("invalid auth token") != std::string::npos;
}

// The watch's stream of JSON lines (one per answer of etcd), fed in pieces as they arrive: the
// line reader hands each whole line to the decoder, which passes changes to the receiver.
class WatchStream {
 public:
  WatchStream(std::string member, int64_t start_revision, const WatchReceiver& receive)
      : member_(std::move(member)), start_revision_(start_revision), receive_(receive) {}

  // The next piece of the stream; false ends the watch.
  bool Feed(const char* data, size_t size) {
    pending_.append(data, size);
    for (size_t eol; receiving_ && (eol = pending_.find('\n')) != std::string::npos;) {
      const json line = json::parse(std::string_view(pending_).substr(0, eol), nullptr, false);
      pending_.erase(0, eol + 1);
      OnLine(line);
    }
    return receiving_;
  }
  bool receiving() const { return receiving_; }
  const Status& ended() const { return ended_; }  // why the stream said to end (OK: the receiver did)
  bool delivered() const { return delivered_; }
  bool token_refused() const { return token_refused_; }

 private:
  void OnLine(const json& line) {
    const json result = line.is_object() ? line.value("result", json()) : json();
    if (!result.is_object()) {
      const std::string said = line.is_object() ? line.value("error", json()).dump() : "not JSON";
      return End(UnavailableCluster(fmt::format("{}: the watch ended: {}", member_, said)));
    }
    if (const int64_t compacted = Int64(result, "compact_revision"); compacted > 0) {
      return End(Aborted(fmt::format("etcd {} compacted its history to revision {}, past the watch's start {}", member_,
                                     compacted, start_revision_)));
    }
    if (result.value("canceled", false)) {
      const std::string reason = StringField(result, "cancel_reason");
      token_refused_ = TokenRefused(reason);
      return End(token_refused_
                     ? PermissionDenied(fmt::format("etcd {} refused the watch's token: {}", member_, reason))
                     : UnavailableCluster(fmt::format("{} canceled the watch: {}", member_, reason)));
    }
    auto events = result.find("events");
    if (events == result.end() || !events->is_array() || events->empty()) return;  // created, or progress
    Result<std::vector<WatchEvent>> batch = DecodeEvents(*events);
    if (!batch.ok()) return End(batch.status());
    delivered_ = true;
    receiving_ = receive_(std::move(batch).value());
  }
  void End(Status why) {
    ended_ = std::move(why);
    receiving_ = false;
  }

  const std::string member_;
  const int64_t start_revision_;
  const WatchReceiver& receive_;
  std::string pending_;  // a line not complete yet
  bool receiving_ = true;
  bool delivered_ = false;
  bool token_refused_ = false;
  Status ended_;
};

}  // namespace

Result<std::vector<Endpoint>> ParseEndpoints(std::string_view spec, std::string_view option) {
  const auto refuse = [&](std::string_view why) -> Status {
    return InvalidArgument(fmt::format("{} \"{}\": {}; expected etcd://HOST:PORT[,HOST:PORT...]", option, spec, why));
  };
  if (!spec.starts_with(kScheme)) return refuse("not an etcd:// address");
  std::string_view rest = spec.substr(kScheme.size());
  std::vector<Endpoint> out;
  while (true) {
    const size_t comma = rest.find(',');
    const std::string_view item = rest.substr(0, comma);
    const size_t colon = item.rfind(':');
    if (item.empty() || colon == std::string_view::npos || colon == 0) return refuse("each member needs HOST:PORT");
    Endpoint e{.host = std::string(item.substr(0, colon))};
    const std::string_view port = item.substr(colon + 1);
    const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), e.port);
    if (ec != std::errc() || end != port.data() + port.size() || e.port < 1 || e.port > kMaxPort) {
      return refuse(fmt::format("port \"{}\" is not 1-65535", port));
    }
    out.push_back(std::move(e));
    if (comma == std::string_view::npos) break;
    rest = rest.substr(comma + 1);
  }
  return out;
}

std::string PrefixEnd(std::string_view prefix) {
  std::string end(prefix);
  while (!end.empty()) {
    if (static_cast<unsigned char>(end.back()) < 0xff) {
      end.back() = static_cast<char>(end.back() + 1);
      return end;
    }
    end.pop_back();
  }
  return std::string(1, '\0');  // every key (etcd's convention for "no end")
}

KvClient::KvClient(ClientOptions options) : options_(std::move(options)) {}
KvClient::~KvClient() = default;

const Endpoint& KvClient::preferred() const { return options_.endpoints.at(preferred_); }

void KvClient::Rotate() { preferred_ = (preferred_ + 1) % options_.endpoints.size(); }

Result<std::string> KvClient::Call(const std::string& path, const std::string& body, bool idempotent,
                                   Deadline deadline) {
  const auto until = Clock::now() + deadline.value_or(options_.deadline);
  const bool authenticating = path == kAuthenticatePath;
  if (!options_.user.empty() && token_.empty() && !authenticating) SMV_RETURN_IF_ERROR(Authenticate(Left(until)));
  bool token_renewed = false;
  std::string last_error = options_.endpoints.empty() ? "no member configured" : "no time left to ask a member";
  UnreachableStreak unreachable(options_.endpoints.size());
  for (size_t failed = 0; Clock::now() < until && !options_.endpoints.empty();) {
    const Endpoint& e = options_.endpoints[preferred_];
    // No attempt outlives the call's deadline, and none takes more than request_timeout.
    const milliseconds left = Left(until);
    const auto attempt_began = Clock::now();
    Reply reply = PostOnce(e, options_.tls, path, body, authenticating ? "" : token_,
                           std::min(options_.connect_timeout, left), std::min(options_.request_timeout, left));
    if (reply.answered && reply.status == 200) return std::move(reply.body);
    // An expired token, or one a restarted member forgot, is refused before anything is
    // proposed: renew it, send again.
    if (reply.answered && reply.status == 401 && !authenticating && !options_.user.empty() && !token_renewed) {
      token_renewed = true;
      token_.clear();
      SMV_RETURN_IF_ERROR(Authenticate(Left(until)));
      continue;
    }
    if (reply.answered) SMV_RETURN_IF_ERROR(Refusal(reply, path, options_));
    Rotate();  // this member failed: the rest of this call and the calls after it ask the next one
    if (!idempotent && reply.sent) {
      return Unavailable(
          fmt::format("shared address store unavailable (etcd: {} took the request but gave no answer in {} ms; "
                      "its outcome is unknown)",
                      reply.member, reply.waited.count()));
    }
    last_error = Describe(reply, options_, e);
    if (!idempotent && reply.answered) return UnavailableCluster(last_error + "; outcome unknown");
    // A connect the call's own deadline cut short says nothing about the member.
    const bool cut_short = reply.error == httplib::Error::ConnectionTimeout && left < options_.connect_timeout;
    if (unreachable.Note(Unreachable(reply) && !cut_short, attempt_began)) {
      return UnavailableCluster(fmt::format("{}; no member reachable", last_error));
    }
    if (++failed % options_.endpoints.size() == 0) {
      std::this_thread::sleep_for(std::min(kPauseAfterEveryMemberFailed, Left(until)));  // before asking them all again
    }
  }
  return UnavailableCluster(last_error);
}

Result<json> KvClient::CallJson(const std::string& path, const json& request, bool idempotent, Deadline deadline) {
  auto body = Call(path, request.dump(), idempotent, deadline);
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
  token_ = StringField(*answer, "token");
  if (token_.empty()) return Internal("etcd answered the authentication without a token");
  return OkStatus();
}

Result<RangeResult> KvClient::Get(std::string_view key, Deadline deadline) {
  return Range({{"key", Base64(key)}}, deadline);
}

Result<RangeResult> KvClient::GetPrefix(std::string_view prefix, int64_t limit, int64_t revision, Deadline deadline) {
  // etcd wants a key: every key is the range from "\0" to "\0".
  const std::string key = prefix.empty() ? std::string(1, '\0') : std::string(prefix);
  json request = {{"key", Base64(key)}, {"range_end", Base64(PrefixEnd(prefix))}};
  if (limit > 0) request["limit"] = std::to_string(limit);
  if (revision > 0) request["revision"] = std::to_string(revision);
  return Range(request, deadline);
}

Result<RangeResult> KvClient::Range(const nlohmann::json& request, Deadline deadline) {
  auto answer = CallJson("/v3/kv/range", request, true, deadline);
  if (!answer.ok()) return answer.status();
  RangeResult out;
  out.revision = Int64(answer->value("header", json::object()), "revision");
  out.more = answer->value("more", false);
  for (const json& kv : answer->value("kvs", json::array())) {
    auto decoded = DecodeKeyValue(kv);
    if (!decoded.ok()) return decoded.status();
    out.kvs.push_back(std::move(decoded).value());
  }
  return out;
}

Result<TxnResult> KvClient::Commit(const Txn& txn, Deadline deadline) {
  json request = {{"compare", json::array()}, {"success", json::array()}, {"failure", json::array()}};
  for (const Compare& c : txn.compares) request["compare"].push_back(EncodeCompare(c));
  for (const Op& op : txn.success) request["success"].push_back(EncodeOp(op));
  for (const Op& op : txn.failure) request["failure"].push_back(EncodeOp(op));
  auto answer = CallJson("/v3/kv/txn", request, false, deadline);
  if (!answer.ok()) return answer.status();
  return TxnResult{.succeeded = answer->value("succeeded", false),
                   .revision = Int64(answer->value("header", json::object()), "revision")};
}

Result<int64_t> KvClient::GrantLease(std::chrono::seconds ttl, Deadline deadline) {
  // Sent again when its answer is lost: the lease nobody heard of expires by itself.
  auto answer = CallJson("/v3/lease/grant", {{"TTL", std::to_string(ttl.count())}}, true, deadline);
  if (!answer.ok()) return answer.status();
  const int64_t id = Int64(*answer, "ID");
  if (id == 0) return Internal(fmt::format("etcd granted no lease: {}", StringField(*answer, "error", answer->dump())));
  return id;
}

Status KvClient::KeepLeaseAlive(int64_t lease, Deadline deadline) {
  // The gateway's keepalive stream answers one request with one line and ends.
  auto answer = CallJson("/v3/lease/keepalive", {{"ID", std::to_string(lease)}}, true, deadline);
  if (!answer.ok()) return answer.status();
  if (Int64(answer->value("result", json::object()), "TTL") <= 0) {
    return NotFound(fmt::format("etcd lease {:x} has expired", lease));
  }
  return OkStatus();
}

Result<int64_t> KvClient::LeaseTimeToLive(int64_t lease, Deadline deadline) {
  auto answer = CallJson("/v3/lease/timetolive", {{"ID", std::to_string(lease)}}, true, deadline);
  if (!answer.ok()) return answer.status();
  const int64_t ttl = Int64(*answer, "TTL");
  if (ttl < 0) return NotFound(fmt::format("etcd lease {:x} has expired", lease));
  return ttl;
}

Status KvClient::RevokeLease(int64_t lease, Deadline deadline) {
  auto answer = CallJson("/v3/lease/revoke", {{"ID", std::to_string(lease)}}, true, deadline);
  if (!answer.ok() && answer.status().code() != Code::kNotFound) return answer.status();
  return OkStatus();
}

struct KvClient::WatchEnd {
  Status status;               // OK: stopped, or ended by the receiver
  bool delivered = false;      // a batch reached the receiver: a new watch starts after it
  bool token_refused = false;  // etcd refused the token before anything was delivered
  bool member_failed = false;  // the next watch asks the next member
};

Status KvClient::Watch(std::string_view prefix, int64_t start_revision, const WatchReceiver& receive) {
  if (options_.endpoints.empty()) return UnavailableCluster("no member configured");
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
  const Endpoint& e = options_.endpoints[preferred_];
  std::unique_ptr<httplib::Client> http = HttpClient(e, options_.tls);
  http->set_connection_timeout(options_.connect_timeout);
  // A quiet book sends nothing for hours: the stream is ended by StopWatch or by the check of its
  // member, not by a timeout.
  http->set_read_timeout(std::chrono::hours(24));
  {
    std::scoped_lock lock(watch_mu_);
    if (watch_stopped_) return {};
    watching_ = http.get();
    watch_interrupted_ = watched_member_hung_ = false;
    ++watch_generation_;
  }
  httplib::Request request = WatchRequest(prefix, start_revision, token_);
  WatchStream stream(MemberName(e), start_revision, receive);
  request.content_receiver = [&stream](const char* data, size_t size, uint64_t, uint64_t) {
    return stream.Feed(data, size);
  };
  // The check reads the watched key itself: a linearizable read, which a member cut off from the
  // quorum cannot answer either.
  const json probe = {{"key", Base64(prefix)}, {"limit", "1"}, {"keys_only", true}};
  std::jthread check;
  if (options_.watch_check_interval.count() > 0) {
    check = std::jthread([this, e, token = token_, probe = probe.dump()](std::stop_token stop) {
      CheckWatchedMember(stop, e, token, probe);
    });
  }
  httplib::Response response;
  httplib::Error error = httplib::Error::Success;
  const bool done = http->send(request, response, error);
  bool stopped = false, interrupted = false, hung = false;
  {
    std::scoped_lock lock(watch_mu_);
    watching_ = nullptr;
    stopped = watch_stopped_;
    interrupted = std::exchange(watch_interrupted_, false);
    hung = std::exchange(watched_member_hung_, false);
  }
  check = {};  // stops and joins the check
  WatchEnd end{.delivered = stream.delivered(), .token_refused = stream.token_refused()};
  if (stopped || interrupted || (!stream.receiving() && stream.ended().ok())) return end;
  end.member_failed = true;
  if (hung) {
    end.status =
        UnavailableCluster(fmt::format("{}: the watched member stopped answering (no answer to a read in {} ms)",
                                       MemberName(e), options_.request_timeout.count()));
  } else if (!stream.ended().ok()) {
    end.status = stream.ended();
    end.member_failed = end.status.code() == Code::kUnavailable;
  } else if (!done) {
    end.status = UnavailableCluster(fmt::format("{}: the watch broke: {}", MemberName(e), httplib::to_string(error)));
  } else {
    end.status = UnavailableCluster(fmt::format("{}: the watch ended (HTTP {})", MemberName(e), response.status));
  }
  return end;
}

void KvClient::CheckWatchedMember(std::stop_token stop, Endpoint member, std::string token, std::string probe) {
  std::mutex mu;
  std::condition_variable_any wake;
  std::unique_lock lock(mu);
  while (!wake.wait_for(lock, stop, options_.watch_check_interval, [] { return false; }) && !stop.stop_requested()) {
    const Reply reply = PostOnce(member, options_.tls, "/v3/kv/range", probe, token, options_.connect_timeout,
                                 options_.request_timeout);
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
  const auto until = Clock::now() + std::chrono::seconds(5);
  while (watching_ != nullptr && watch_generation_ == generation && Clock::now() < until) {
    (why == WatchStop::kMemberHung ? watched_member_hung_ : watch_interrupted_) = true;
    watching_->stop();
    lock.unlock();
    std::this_thread::sleep_for(milliseconds(10));
    lock.lock();
  }
}

}  // namespace smv::etcd
