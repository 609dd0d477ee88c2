#include "etcd/gateway_json.h"

#include <openssl/evp.h>

#include <charconv>
#include <utility>
#include <variant>

namespace smv::etcd {
namespace {

using nlohmann::json;

constexpr size_t kQuotedAnswerLength = 200;

// A value for an error message: short, and never throwing on what it prints.
std::string Quote(const json& value) {
  std::string text = value.dump(-1, ' ', false, json::error_handler_t::replace);
  if (text.size() > kQuotedAnswerLength) text = text.substr(0, kQuotedAnswerLength) + "...";
  return text;
}

Status Mistyped(const char* field, const json& value, std::string_view expected) {
  return Internal(fmt::format("etcd answered \"{}\" as {}, not {}", field, Quote(value), expected));
}

// The field's value, or nullptr when absent (or when `object` is not an object at all).
const json* Find(const json& object, const char* field) {
  if (!object.is_object()) return nullptr;
  auto it = object.find(field);
  return it == object.end() ? nullptr : &*it;
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

Result<int64_t> HeaderRevision(const json& answer) {
  Result<const json*> header = ReadObject(answer, "header");
  if (!header.ok()) return header.status();
  return ReadInt64(**header, "revision");
}

}  // namespace

std::string Base64(std::string_view raw) {
  std::string out(4 * ((raw.size() + 2) / 3), '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(raw.data()), static_cast<int>(raw.size()));
  out.resize(static_cast<size_t>(n));
  return out;
}

Result<std::string> Unbase64(std::string_view text) {
  const auto malformed = [&] { return Internal(fmt::format("etcd answered a malformed base64 value \"{}\"", text)); };
  if (text.size() % 4 != 0) return malformed();
  std::string out(3 * text.size() / 4, '\0');
  const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(text.data()), static_cast<int>(text.size()));
  if (n < 0) return malformed();
  // EVP_DecodeBlock counts the bytes that padding stands for.
  size_t padding = 0;
  for (auto it = text.rbegin(); it != text.rend() && *it == '=' && padding < 2; ++it) ++padding;
  out.resize(static_cast<size_t>(n) - padding);
  return out;
}

Result<json> ParseAnswer(std::string_view body) {
  json answer = json::parse(body, nullptr, false);
  if (answer.is_discarded() || !answer.is_object()) {
    return Internal(
        fmt::format("etcd answered something that is not JSON: \"{}\"", body.substr(0, kQuotedAnswerLength)));
  }
  return answer;
}

Result<int64_t> ReadInt64(const json& object, const char* field) {
  const json* value = Find(object, field);
  if (value == nullptr) return int64_t{0};
  if (value->is_number_integer()) return value->get<int64_t>();
  const std::string* text = value->get_ptr<const std::string*>();
  int64_t out = 0;
  if (text != nullptr) {
    const auto [end, ec] = std::from_chars(text->data(), text->data() + text->size(), out);
    if (ec == std::errc() && end == text->data() + text->size() && !text->empty()) return out;
  }
  return Mistyped(field, *value, "a 64-bit integer");
}

Result<bool> ReadBool(const json& object, const char* field) {
  const json* value = Find(object, field);
  if (value == nullptr) return false;
  if (!value->is_boolean()) return Mistyped(field, *value, "true or false");
  return value->get<bool>();
}

Result<std::string> ReadString(const json& object, const char* field) {
  const json* value = Find(object, field);
  if (value == nullptr) return std::string();
  if (!value->is_string()) return Mistyped(field, *value, "a string");
  return value->get<std::string>();
}

Result<const json*> ReadObject(const json& object, const char* field) {
  static const json kEmptyObject = json::object();
  const json* value = Find(object, field);
  if (value == nullptr) return &kEmptyObject;
  if (!value->is_object()) return Mistyped(field, *value, "an object");
  return value;
}

Result<const json*> ReadArray(const json& object, const char* field) {
  static const json kEmptyArray = json::array();
  const json* value = Find(object, field);
  if (value == nullptr) return &kEmptyArray;
  if (!value->is_array()) return Mistyped(field, *value, "an array");
  return value;
}

Result<KeyValue> DecodeKeyValue(const json& kv) {
  if (!kv.is_object()) return Mistyped("kv", kv, "an object");
  Result<std::string> key = ReadString(kv, "key");
  Result<std::string> value = ReadString(kv, "value");
  if (!key.ok()) return key.status();
  if (!value.ok()) return value.status();
  key = Unbase64(*key);
  value = Unbase64(*value);
  if (!key.ok()) return key.status();
  if (!value.ok()) return value.status();
  KeyValue out{.key = std::move(key).value(), .value = std::move(value).value()};
  for (auto [field, into] :
       {std::pair{"create_revision", &out.create_revision}, std::pair{"mod_revision", &out.mod_revision},
        std::pair{"version", &out.version}, std::pair{"lease", &out.lease}}) {
    Result<int64_t> number = ReadInt64(kv, field);
    if (!number.ok()) return number.status();
    *into = *number;
  }
  return out;
}

Result<RangeResult> DecodeRange(const json& answer) {
  RangeResult out;
  Result<int64_t> revision = HeaderRevision(answer);
  Result<bool> more = ReadBool(answer, "more");
  Result<const json*> kvs = ReadArray(answer, "kvs");
  if (!revision.ok()) return revision.status();
  if (!more.ok()) return more.status();
  if (!kvs.ok()) return kvs.status();
  out.revision = *revision;
  out.more = *more;
  for (const json& kv : **kvs) {
    Result<KeyValue> decoded = DecodeKeyValue(kv);
    if (!decoded.ok()) return decoded.status().Annotate("kvs");
    out.kvs.push_back(std::move(decoded).value());
  }
  return out;
}

Result<TxnResult> DecodeTxn(const json& answer) {
  Result<bool> succeeded = ReadBool(answer, "succeeded");
  Result<int64_t> revision = HeaderRevision(answer);
  if (!succeeded.ok()) return succeeded.status();
  if (!revision.ok()) return revision.status();
  return TxnResult{.succeeded = *succeeded, .revision = *revision};
}

Result<std::vector<WatchEvent>> DecodeEvents(const json& events) {
  if (!events.is_array()) return Mistyped("events", events, "an array");
  std::vector<WatchEvent> batch;
  for (const json& event : events) {
    if (!event.is_object()) return Mistyped("events", event, "an array of objects");
    Result<std::string> type = ReadString(event, "type");
    if (!type.ok()) return type.status();
    Result<const json*> kv = ReadObject(event, "kv");
    if (!kv.ok()) return kv.status();
    Result<KeyValue> decoded = DecodeKeyValue(**kv);
    if (!decoded.ok()) return decoded.status();
    batch.push_back({.deleted = *type == "DELETE", .kv = std::move(decoded).value()});
  }
  return batch;
}

json EncodeTxn(const Txn& txn) {
  json request = {{"compare", json::array()}, {"success", json::array()}, {"failure", json::array()}};
  for (const Compare& c : txn.compares) request["compare"].push_back(EncodeCompare(c));
  for (const Op& op : txn.success) request["success"].push_back(EncodeOp(op));
  for (const Op& op : txn.failure) request["failure"].push_back(EncodeOp(op));
  return request;
}

}  // namespace smv::etcd
