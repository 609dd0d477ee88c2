#include "etcd/watch_stream.h"

#include <nlohmann/json.hpp>

#include "etcd/gateway_json.h"
#include "etcd/member_http.h"

namespace smv::etcd {
namespace {

using nlohmann::json;

// A canceled watch whose token etcd refused (expired, or forgotten by a restarted member).
bool TokenRefused(const std::string& reason) {
  return reason.find("Unauthenticated") != std::string::npos || reason.find("invalid auth token") != std::string::npos;
}

WatchLine EndedBy(Status why) { return {.kind = WatchLine::Kind::kEnd, .end = std::move(why)}; }

// A line without a result: etcd's error answer (the stream ends), or not JSON at all.
WatchLine WithoutResult(const json& line, std::string_view member) {
  if (!line.is_object()) return EndedBy(EtcdUnavailable(fmt::format("{}: the watch ended: not JSON", member)));
  const json error = line.contains("error") ? line["error"] : json();
  const std::string said = error.dump(-1, ' ', false, json::error_handler_t::replace);
  return EndedBy(EtcdUnavailable(fmt::format("{}: the watch ended: {}", member, said)));
}

WatchLine Canceled(const json& result, std::string_view member) {
  Result<std::string> reason = ReadString(result, "cancel_reason");
  if (!reason.ok()) return EndedBy(reason.status());
  if (!TokenRefused(*reason))
    return EndedBy(EtcdUnavailable(fmt::format("{} canceled the watch: {}", member, *reason)));
  WatchLine out = EndedBy(PermissionDenied(fmt::format("etcd {} refused the watch's token: {}", member, *reason)));
  out.token_refused = true;
  return out;
}

}  // namespace

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

std::optional<std::string> LineReader::Next() {
  const size_t eol = pending_.find('\n');
  if (eol == std::string::npos) return std::nullopt;
  std::string line = pending_.substr(0, eol);
  pending_.erase(0, eol + 1);
  return line;
}

WatchLine DecodeWatchLine(std::string_view line, std::string_view member, int64_t start_revision) {
  const json parsed = json::parse(line, nullptr, false);
  const json* result = parsed.is_object() && parsed.contains("result") ? &parsed["result"] : nullptr;
  if (result == nullptr || !result->is_object()) return WithoutResult(parsed, member);
  Result<int64_t> compacted = ReadInt64(*result, "compact_revision");
  Result<bool> canceled = ReadBool(*result, "canceled");
  if (!compacted.ok()) return EndedBy(compacted.status());
  if (!canceled.ok()) return EndedBy(canceled.status());
  if (*compacted > 0) {
    return EndedBy(Aborted(fmt::format("etcd {} compacted its history to revision {}, past the watch's start {}",
                                       member, *compacted, start_revision)));
  }
  if (*canceled) return Canceled(*result, member);
  Result<const json*> events = ReadArray(*result, "events");
  if (!events.ok()) return EndedBy(events.status());
  if ((*events)->empty()) return {};  // created, or progress
  Result<std::vector<WatchEvent>> batch = DecodeEvents(**events);
  if (!batch.ok()) return EndedBy(batch.status());
  return {.kind = WatchLine::Kind::kEvents, .events = std::move(batch).value()};
}

bool WatchStream::Feed(const char* data, size_t size) {
  lines_.Append(data, size);
  while (receiving_) {
    std::optional<std::string> line = lines_.Next();
    if (!line) break;
    WatchLine decoded = DecodeWatchLine(*line, member_, start_revision_);
    if (decoded.kind == WatchLine::Kind::kEnd) {
      token_refused_ = decoded.token_refused;
      ended_ = std::move(decoded.end);
      receiving_ = false;
    } else if (decoded.kind == WatchLine::Kind::kEvents) {
      delivered_ = true;
      receiving_ = receive_(std::move(decoded.events));
    }
  }
  return receiving_;
}

}  // namespace smv::etcd
