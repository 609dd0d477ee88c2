#include "common/record_fields.h"

#include <limits>

namespace smv::records {

void Encode(json& out, const std::string& v) { out = v; }
void Encode(json& out, int64_t v) { out = v; }
void Encode(json& out, int v) { out = v; }
void Encode(json& out, bool v) { out = v; }
void Encode(json& out, const std::map<std::string, std::string>& v) { out = v; }
void Encode(json& out, const IpAddress& v) { out = v.ToString(); }
void Encode(json& out, const Prefix& v) { out = v.ToString(); }

std::string_view Decode(const json& in, std::string& v) {
  if (!in.is_string()) return "a string";
  v = in.get_ref<const std::string&>();
  return "";
}

std::string_view Decode(const json& in, int64_t& v) {
  if (!in.is_number_integer()) return "an integer";
  v = in.get<int64_t>();
  return "";
}

std::string_view Decode(const json& in, int& v) {
  if (!in.is_number_integer()) return "an integer";
  const int64_t wide = in.get<int64_t>();
  if (wide < std::numeric_limits<int>::min() || wide > std::numeric_limits<int>::max()) return "a 32-bit integer";
  v = static_cast<int>(wide);
  return "";
}

std::string_view Decode(const json& in, bool& v) {
  if (!in.is_boolean()) return "a boolean";
  v = in.get<bool>();
  return "";
}

std::string_view Decode(const json& in, std::map<std::string, std::string>& v) {
  if (!in.is_object()) return "an object of strings";
  v.clear();
  for (const auto& [key, value] : in.items()) {
    if (!value.is_string()) return "an object of strings";
    v[key] = value.get<std::string>();
  }
  return "";
}

std::string_view Decode(const json& in, IpAddress& v) {
  std::optional<IpAddress> ip = in.is_string() ? IpAddress::Parse(in.get_ref<const std::string&>()) : std::nullopt;
  if (!ip) return "an IP address";
  v = *ip;
  return "";
}

std::string_view Decode(const json& in, Prefix& v) {
  std::optional<Prefix> prefix = in.is_string() ? Prefix::Parse(in.get_ref<const std::string&>()) : std::nullopt;
  if (!prefix) return "a CIDR prefix";
  v = *prefix;
  return "";
}

std::string Describe(const Location& where) {
  std::string key;
  for (const char c : where.key) {
    if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
      key.push_back(c);
    } else {
      key += fmt::format("\\x{:02x}", static_cast<unsigned char>(c));
    }
  }
  return fmt::format("in {} (key \"{}\")", where.db, key);
}

Result<json> ParseStored(const Location& where, std::string_view value, int current_version) {
  json j = json::parse(value, nullptr, false);
  if (j.is_discarded() || !j.is_object())
    return Internal(fmt::format("corrupt record {}: not a JSON object", Describe(where)));
  auto v = j.find("v");
  if (v == j.end() || !v->is_number_integer() || v->get<int64_t>() < 1) {
    return Internal(fmt::format("corrupt record {}: no record version \"v\"", Describe(where)));
  }
  if (v->get<int64_t>() > current_version) {
    return FailedPrecondition(fmt::format("record {} has version {}, newer than this static-macvlan understands ({})",
                                          Describe(where), v->get<int64_t>(), current_version));
  }
  return j;
}

}  // namespace smv::records
