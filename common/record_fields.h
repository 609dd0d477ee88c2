#pragma once
// Stored records as versioned JSON objects, with each record's fields declared once.
//
// A record type declares its stored fields in one function template used for both directions:
//
//   template <typename Fields, records::RecordOf<StoredLease> R>
//   void RecordSchema(Fields& f, R& r) { f("address", r.address, kRequired); f("since", r.since); }
//
// EncodeRecord() walks it with a writer (R const), DecodeRecord() with a reader. Every value carries "v",
// the record version. Decoding never throws: a value that is not JSON, a field of the wrong type
// or a version newer than this build is a Status naming the database, the key and the field.
// A field missing from a stored value keeps the record's default (fields added later).

#include <concepts>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/ip.h"
#include "common/status.h"

namespace smv::records {

using nlohmann::json;

// A schema function's record parameter: the record type, const when encoding.
template <typename R, typename T>
concept RecordOf = std::same_as<std::remove_const_t<R>, T>;

// Marks a field that every stored value of this version has: missing is corruption.
struct Required {};
inline constexpr Required kRequired;

// Field codecs. Decode returns "" when the value fits, else what was wanted ("a string").
// Other types add overloads in their own namespace (found by argument-dependent lookup).
void Encode(json& out, const std::string& v);
void Encode(json& out, int64_t v);
void Encode(json& out, int v);
void Encode(json& out, bool v);
void Encode(json& out, const std::map<std::string, std::string>& v);
void Encode(json& out, const IpAddress& v);
void Encode(json& out, const Prefix& v);
std::string_view Decode(const json& in, std::string& v);
std::string_view Decode(const json& in, int64_t& v);
std::string_view Decode(const json& in, int& v);
std::string_view Decode(const json& in, bool& v);
std::string_view Decode(const json& in, std::map<std::string, std::string>& v);
std::string_view Decode(const json& in, IpAddress& v);
std::string_view Decode(const json& in, Prefix& v);

template <typename T>
void Encode(json& out, const std::optional<T>& v) {
  if (v) Encode(out, *v);  // left out of the object by the writer when empty
}
template <typename T>
std::string_view Decode(const json& in, std::optional<T>& v) {
  T value{};
  if (std::string_view want = Decode(in, value); !want.empty()) return want;
  v = std::move(value);
  return "";
}
template <typename T>
void Encode(json& out, const std::vector<T>& v) {
  out = json::array();
  for (const T& item : v) Encode(out.emplace_back(), item);
}
template <typename T>
std::string_view Decode(const json& in, std::vector<T>& v) {
  if (!in.is_array()) return "an array";
  v.clear();
  for (const json& item : in) {
    if (std::string_view want = Decode(item, v.emplace_back()); !want.empty()) return want;
  }
  return "";
}

// Writes the fields into a JSON object.
class Writer {
 public:
  template <typename T>
  void operator()(const char* key, const T& value) {
    if constexpr (requires { value.has_value(); }) {
      if (!value.has_value()) return;
    }
    Encode(out_[key], value);
  }
  template <typename T>
  void operator()(const char* key, const T& value, Required) {
    (*this)(key, value);
  }
  json& out() { return out_; }

 private:
  json out_ = json::object();
};

// The top-level fields of one stored JSON object. Parse() reads flat objects (every record but
// pools and networks) with nlohmann's SAX interface into storage reused from the previous
// record, so loading 65,536 reservations builds no DOM and allocates almost nothing; an object
// with nested values is parsed into a DOM and its top-level fields copied.
class StoredFields {
 public:
  // False when `text` is not a JSON object.
  bool Parse(std::string_view text);
  // The field's value, or null when absent.
  const json* Find(std::string_view key) const;

 private:
  friend class FlatSax;
  std::vector<std::pair<std::string, json>> fields_;  // [0, size_) in use; the rest kept for reuse
  size_t size_ = 0;
};

// Reads the fields from a stored object; the first mistyped field is kept as the error.
class Reader {
 public:
  explicit Reader(const StoredFields& in) : fields_(&in) {}
  explicit Reader(const json& object) : object_(&object) {}  // a nested object
  template <typename T>
  void operator()(const char* key, T& value) {
    if (!error_.empty()) return;
    const json* field = Find(key);
    if (field == nullptr || field->is_null()) return;
    if (std::string_view want = Decode(*field, value); !want.empty()) {
      error_ = fmt::format("field \"{}\": want {}, got {}", key, want,
                           field->dump(-1, ' ', false, json::error_handler_t::replace));
    }
  }
  template <typename T>
  void operator()(const char* key, T& value, Required) {
    if (error_.empty() && Find(key) == nullptr) error_ = fmt::format("field \"{}\" is missing", key);
    (*this)(key, value);
  }
  const std::string& error() const { return error_; }

 private:
  const json* Find(std::string_view key) const {
    if (fields_ != nullptr) return fields_->Find(key);
    auto it = object_->find(key);
    return it == object_->end() ? nullptr : &*it;
  }
  const StoredFields* fields_ = nullptr;
  const json* object_ = nullptr;
  std::string error_;
};

// Where a stored value lives, for messages: database and key (non-printable bytes escaped).
struct Location {
  std::string_view db;
  std::string_view key;
};
std::string Describe(const Location& where);

// Parses a stored value into `out` and checks its version (1..current).
Status ParseStored(const Location& where, std::string_view value, int current_version, StoredFields& out);

template <typename Record>
std::string EncodeRecord(const Record& record, int version) {
  Writer w;
  w("v", version);
  RecordSchema(w, record);
  return w.out().dump();
}

template <typename Record>
Status DecodeRecord(const Location& where, std::string_view value, int current_version, Record& record) {
  thread_local StoredFields fields;  // reused: see StoredFields
  SMV_RETURN_IF_ERROR(ParseStored(where, value, current_version, fields));
  Reader r(fields);
  RecordSchema(r, record);
  if (!r.error().empty()) return Internal(fmt::format("corrupt record {}: {}", Describe(where), r.error()));
  return OkStatus();
}

}  // namespace smv::records
