#pragma once
// etcd's JSON gateway on the wire: requests encoded, answers decoded. Every read of an answer is
// non-throwing: a body that is not JSON, or a field of another type than etcd's proto3 JSON gives
// it, is Code::kInternal naming the field (asking again would get the same answer; the caller's
// thread goes on). proto3 JSON leaves out zero values: an absent field reads as 0, "", false or
// empty. Keys and values travel as base64, 64-bit numbers as strings.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/status.h"
#include "etcd/kv_client.h"

namespace smv::etcd {

std::string Base64(std::string_view raw);
Result<std::string> Unbase64(std::string_view text);

// The answer's JSON object (kInternal when the body is not one).
Result<nlohmann::json> ParseAnswer(std::string_view body);

// Typed reads of one field of a JSON object; absent is the zero value, another type kInternal.
Result<int64_t> ReadInt64(const nlohmann::json& object, const char* field);
Result<bool> ReadBool(const nlohmann::json& object, const char* field);
Result<std::string> ReadString(const nlohmann::json& object, const char* field);
// The field's object or array (an empty one when absent); the pointer lives as long as `object`.
Result<const nlohmann::json*> ReadObject(const nlohmann::json& object, const char* field);
Result<const nlohmann::json*> ReadArray(const nlohmann::json& object, const char* field);

Result<KeyValue> DecodeKeyValue(const nlohmann::json& kv);
// The answers of /v3/kv/range and /v3/kv/txn.
Result<RangeResult> DecodeRange(const nlohmann::json& answer);
Result<TxnResult> DecodeTxn(const nlohmann::json& answer);
// The changes of one watch answer (its "events" array), in order.
Result<std::vector<WatchEvent>> DecodeEvents(const nlohmann::json& events);

nlohmann::json EncodeTxn(const Txn& txn);

}  // namespace smv::etcd
