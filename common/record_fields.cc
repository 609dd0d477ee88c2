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

// SAX events of a flat object, written into StoredFields' reused slots. Any nesting stops the
// parse (the caller falls back to the DOM).
class FlatSax {
 public:
  explicit FlatSax(StoredFields& out) : out_(out) {}
  bool null() { return Set(nullptr); }
  bool boolean(bool v) { return Set(v); }
  bool number_integer(json::number_integer_t v) { return Set(v); }
  bool number_unsigned(json::number_unsigned_t v) { return Set(v); }
  bool number_float(json::number_float_t v, const json::string_t&) { return Set(v); }
  bool string(json::string_t& v) {
    if (current_ == nullptr) return false;
    if (current_->is_string()) {
      current_->get_ref<json::string_t&>().assign(v);  // keeps the previous record's capacity
    } else {
      *current_ = v;
    }
    current_ = nullptr;
    return true;
  }
  bool binary(json::binary_t&) { return false; }
  bool start_object(std::size_t) { return ++depth_ == 1; }
  bool key(json::string_t& k) {
    if (out_.size_ == out_.fields_.size()) out_.fields_.emplace_back();
    auto& [name, value] = out_.fields_[out_.size_++];
    name.assign(k);
    current_ = &value;
    return true;
  }
  bool end_object() { return depth_-- == 1; }
  bool start_array(std::size_t) { return false; }
  bool end_array() { return false; }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception&) { return false; }
  bool flat() const { return depth_ == 0; }

 private:
  template <typename T>
  bool Set(T v) {
    if (current_ == nullptr) return false;  // a scalar that is not an object's field
    *current_ = v;
    current_ = nullptr;
    return true;
  }
  StoredFields& out_;
  json* current_ = nullptr;
  int depth_ = 0;
};

bool StoredFields::Parse(std::string_view text) {
  size_ = 0;
  FlatSax sax(*this);
  if (json::sax_parse(text, &sax, json::input_format_t::json, /*strict=*/true) && sax.flat()) return true;
  // Not flat (or not JSON): the DOM decides.
  size_ = 0;
  json dom = json::parse(text, nullptr, false);
  if (dom.is_discarded() || !dom.is_object()) return false;
  for (auto& [key, value] : dom.items()) {
    if (size_ == fields_.size()) fields_.emplace_back();
    fields_[size_++] = {key, std::move(value)};
  }
  return true;
}

const json* StoredFields::Find(std::string_view key) const {
  for (size_t i = 0; i < size_; ++i) {
    if (fields_[i].first == key) return &fields_[i].second;
  }
  return nullptr;
}

Status ParseStored(const Location& where, std::string_view value, int current_version, StoredFields& out) {
  if (!out.Parse(value)) return Internal(fmt::format("corrupt record {}: not a JSON object", Describe(where)));
  const json* v = out.Find("v");
  if (v == nullptr || !v->is_number_integer() || v->get<int64_t>() < 1) {
    return Internal(fmt::format("corrupt record {}: no record version \"v\"", Describe(where)));
  }
  if (v->get<int64_t>() > current_version) {
    return FailedPrecondition(fmt::format("record {} has version {}, newer than this static-macvlan understands ({})",
                                          Describe(where), v->get<int64_t>(), current_version));
  }
  return OkStatus();
}

}  // namespace smv::records
