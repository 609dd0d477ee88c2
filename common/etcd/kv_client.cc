#include "common/etcd/kv_client.h"

#include <openssl/evp.h>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <charconv>
#include <thread>
#include <utility>

namespace smv::etcd {
namespace {

using nlohmann::json;

constexpr std::string_view kScheme = "etcd://";
constexpr int kMaxPort = 65535;
constexpr std::chrono::milliseconds kPauseAfterEveryMemberFailed{100};
constexpr const char* kAuthenticatePath = "/v3/auth/authenticate";

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
  return out;
}

json EncodeOp(const Op& op) {
  if (const auto* put = std::get_if<PutOp>(&op)) {
    return {{"request_put", {{"key", Base64(put->key)}, {"value", Base64(put->value)}}}};
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

Result<std::string> KvClient::Call(const std::string& path, const std::string& body, bool idempotent,
                                   Deadline deadline) {
  using Clock = std::chrono::steady_clock;
  const auto until = Clock::now() + deadline.value_or(options_.deadline);
  const bool authenticating = path == kAuthenticatePath;
  if (!options_.user.empty() && token_.empty() && !authenticating) SMV_RETURN_IF_ERROR(Authenticate(deadline));
  bool token_renewed = false;
  std::string last_error = "no member configured";
  for (size_t attempt = 0; Clock::now() < until && !options_.endpoints.empty(); ++attempt) {
    const size_t index = (preferred_ + attempt) % options_.endpoints.size();
    const Endpoint& e = options_.endpoints[index];
    const std::string member = fmt::format("{}:{}", e.host, e.port);
    std::unique_ptr<httplib::Client> http = HttpClient(e, options_.tls);
    // No attempt outlives the call's deadline.
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - Clock::now());
    const auto connect = std::min(options_.connect_timeout, left);
    const auto request = std::min(options_.request_timeout, left);
    http->set_connection_timeout(connect);
    http->set_read_timeout(request);
    http->set_write_timeout(request);
    httplib::Request request_out;
    request_out.method = "POST";
    request_out.path = path;
    request_out.body = body;
    request_out.set_header("Content-Type", "application/json");
    if (!token_.empty() && !authenticating) request_out.set_header("Authorization", token_);
    // etcd's gateway sends every error answer chunked with a trailer, which this HTTP library
    // cannot parse (it reports a read error after the body). The body arrives through the
    // receiver first, so an error status with a body is still etcd's answer.
    std::string answer;
    request_out.content_receiver = [&answer](const char* data, size_t size, uint64_t, uint64_t) {
      answer.append(data, size);
      return true;
    };
    httplib::Response response;
    httplib::Error error = httplib::Error::Success;
    const auto sent_at = Clock::now();
    const bool received = http->send(request_out, response, error) ||
                          (error == httplib::Error::Read && response.status >= 400 && !answer.empty());
    if (!received) {
      const bool sent = error == httplib::Error::Read;
      if (sent && !idempotent) {
        preferred_ = (index + 1) % options_.endpoints.size();  // the read-back goes elsewhere
        const auto waited = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - sent_at);
        return Unavailable(
            fmt::format("shared address store unavailable (etcd: {} took the request but gave no answer in {} ms; "
                        "its outcome is unknown)",
                        member, waited.count()));
      }
      last_error = fmt::format("{}: {}", member, httplib::to_string(error));
      if (error == httplib::Error::SSLConnection || error == httplib::Error::SSLServerVerification ||
          error == httplib::Error::SSLLoadingCerts) {
        last_error += fmt::format(
            " (TLS: the member's certificate must be signed by --etcd-cacert \"{}\" and name {}; a member started "
            "with --client-cert-auth wants --etcd-cert and --etcd-key signed by its CA)",
            options_.tls.ca_file, e.host);
      }
    } else if (response.status == 200) {
      preferred_ = index;
      return answer;
    } else {
      // A member without quorum answers 503 ("etcdserver: request timed out" and the like).
      const json err = json::parse(answer, nullptr, false);
      const std::string message =
          err.is_object() ? err.value("message", err.value("error", answer)) : answer.substr(0, 200);
      // An expired or unknown token is refused before anything is proposed: renew it, send again.
      if (response.status == 401 && !authenticating && !options_.user.empty() && !token_renewed) {
        token_renewed = true;
        token_.clear();
        SMV_RETURN_IF_ERROR(Authenticate(deadline));
        --attempt;  // the same member again
        continue;
      }
      // etcd answers a missing user (auth enabled) and wrong credentials with 400, not 401.
      const bool auth_refused = response.status == 401 || response.status == 403 ||
                                message.find("user name is empty") != std::string::npos ||
                                message.find("authentication failed") != std::string::npos;
      if (auth_refused) {
        return PermissionDenied(fmt::format(
            "etcd {} refused {}{}: {}", member, path,
            options_.user.empty() ? " (it wants a user: --etcd-user)" : fmt::format(" to user \"{}\"", options_.user),
            message));
      }
      if (message.find("CommonName") != std::string::npos) {
        return InvalidArgument(fmt::format(
            "etcd {} refused {}: {} (members that check client certificates want one without a Common Name from "
            "clients of their JSON gateway: issue --etcd-cert without CN and name the user with --etcd-user)",
            member, path, message));
      }
      if (response.status < 500) return Internal(fmt::format("etcd {} refused {}: {}", member, path, message));
      last_error = fmt::format("{}: {}", member, message);
      if (!idempotent) return UnavailableCluster(last_error + "; outcome unknown");
    }
    if ((attempt + 1) % options_.endpoints.size() == 0) {
      std::this_thread::sleep_for(kPauseAfterEveryMemberFailed);  // before asking them all again
    }
  }
  return UnavailableCluster(last_error);
}

Status KvClient::Authenticate(Deadline deadline) {
  const json request = {{"name", options_.user}, {"password", options_.password}};
  auto body = Call(kAuthenticatePath, request.dump(), true, deadline);
  if (!body.ok()) {
    if (body.status().code() == Code::kUnavailable) return body.status();
    return PermissionDenied(
        fmt::format("etcd refused the credentials of --etcd-user \"{}\": {}", options_.user, body.status().message()));
  }
  auto answer = ParseAnswer(*body);
  if (!answer.ok()) return answer.status();
  token_ = answer->value("token", "");
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
  auto body = Call("/v3/kv/range", request.dump(), true, deadline);
  if (!body.ok()) return body.status();
  auto answer = ParseAnswer(*body);
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
  auto body = Call("/v3/kv/txn", request.dump(), false, deadline);
  if (!body.ok()) return body.status();
  auto answer = ParseAnswer(*body);
  if (!answer.ok()) return answer.status();
  return TxnResult{.succeeded = answer->value("succeeded", false),
                   .revision = Int64(answer->value("header", json::object()), "revision")};
}

Status KvClient::Watch(std::string_view prefix, int64_t start_revision, const WatchReceiver& receive) {
  if (options_.endpoints.empty()) return UnavailableCluster("no member configured");
  if (!options_.user.empty() && token_.empty()) SMV_RETURN_IF_ERROR(Authenticate(std::nullopt));
  const Endpoint& e = options_.endpoints[preferred_];
  const std::string member = fmt::format("{}:{}", e.host, e.port);
  std::unique_ptr<httplib::Client> http = HttpClient(e, options_.tls);
  http->set_connection_timeout(options_.connect_timeout);
  // A quiet book sends nothing for hours: the stream is ended by StopWatch, not by a timeout.
  http->set_read_timeout(std::chrono::hours(24));
  {
    std::scoped_lock lock(watch_mu_);
    if (watch_stopped_) return OkStatus();
    watching_ = http.get();
    watch_interrupted_ = false;
    ++watch_generation_;
  }
  const json create = {{"create_request",
                        {{"key", Base64(prefix)},
                         {"range_end", Base64(PrefixEnd(prefix))},
                         {"start_revision", std::to_string(start_revision)}}}};
  httplib::Request request;
  request.method = "POST";
  request.path = "/v3/watch";
  request.body = create.dump();
  request.set_header("Content-Type", "application/json");
  if (!token_.empty()) request.set_header("Authorization", token_);
  std::string pending;  // a line not complete yet
  Status ended = OkStatus();
  bool receiving = true;
  request.content_receiver = [&](const char* data, size_t size, uint64_t, uint64_t) {
    pending.append(data, size);
    for (size_t eol; receiving && (eol = pending.find('\n')) != std::string::npos;) {
      const json line = json::parse(pending.substr(0, eol), nullptr, false);
      pending.erase(0, eol + 1);
      const json result = line.is_object() ? line.value("result", json()) : json();
      if (!result.is_object()) {
        const std::string said = line.is_object() ? line.value("error", json()).dump() : "not JSON";
        ended = UnavailableCluster(fmt::format("{}: the watch ended: {}", member, said));
        receiving = false;
      } else if (const int64_t compacted = Int64(result, "compact_revision"); compacted > 0) {
        ended = Aborted(fmt::format("etcd {} compacted its history to revision {}, past the watch's start {}", member,
                                    compacted, start_revision));
        receiving = false;
      } else if (result.value("canceled", false)) {
        ended = UnavailableCluster(fmt::format("{} canceled the watch: {}", member, result.value("cancel_reason", "")));
        receiving = false;
      } else if (auto events = result.find("events"); events != result.end() && !events->empty()) {
        std::vector<WatchEvent> batch;
        for (const json& event : *events) {
          auto kv = DecodeKeyValue(event.value("kv", json::object()));
          if (!kv.ok()) {
            ended = kv.status();
            receiving = false;
            break;
          }
          batch.push_back({.deleted = event.value("type", "") == "DELETE", .kv = std::move(kv).value()});
        }
        if (receiving) receiving = receive(std::move(batch));
      }
    }
    return receiving;
  };
  httplib::Response response;
  httplib::Error error = httplib::Error::Success;
  const bool done = http->send(request, response, error);
  bool stopped = false, interrupted = false;
  {
    std::scoped_lock lock(watch_mu_);
    watching_ = nullptr;
    stopped = watch_stopped_;
    interrupted = std::exchange(watch_interrupted_, false);
  }
  if (stopped || interrupted || (!receiving && ended.ok())) return OkStatus();
  if (!ended.ok()) return ended;
  preferred_ = (preferred_ + 1) % options_.endpoints.size();  // the next watch asks another member
  if (!done) return UnavailableCluster(fmt::format("{}: the watch broke: {}", member, httplib::to_string(error)));
  return UnavailableCluster(fmt::format("{}: the watch ended (HTTP {})", member, response.status));
}

void KvClient::InterruptWatch() { EndWatch(false); }

void KvClient::StopWatch() { EndWatch(true); }

void KvClient::EndWatch(bool for_good) {
  // A stop that comes before the request is on the wire does nothing to it: ask again until the
  // Watch it was meant for has returned.
  std::unique_lock lock(watch_mu_);
  if (for_good) watch_stopped_ = true;
  const uint64_t generation = watch_generation_;
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (watching_ != nullptr && watch_generation_ == generation && std::chrono::steady_clock::now() < until) {
    watch_interrupted_ = true;
    watching_->stop();
    lock.unlock();
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    lock.lock();
  }
}

}  // namespace smv::etcd
