#pragma once
// The stored form of the network driver's records, store-independent: each record's key and
// its versioned JSON value, with one schema per record (common/record_fields.h). Pinned by the
// golden store test (tests/golden): once a field name ships, it is permanent.
//   network   <network id>   -> {v, options, ipv4: [{pool, gateway}], ipv6: [...], internal}
//   link      <link name>    -> {v, created_by_us, promisc_by_us}
//   endpoint  <endpoint id>  -> {v, network, link, mac, v4, v6, sandbox, name, since}

#include <string>
#include <string_view>

#include "common/status.h"
#include "driver/network_state.h"

namespace smv::driver::records {

inline constexpr int kVersion = 1;

std::string EncodeNetwork(const NetworkRecord& network);
std::string EncodeLink(const LinkRecord& link);
std::string EncodeEndpoint(const EndpointRecord& endpoint);

// The key is the record's id (network id, link name, endpoint id). `db` names the database in
// error messages. Never throws; a corrupt value is kInternal naming the key and the field.
Result<NetworkRecord> DecodeNetwork(std::string_view db, std::string_view key, std::string_view value);
Result<LinkRecord> DecodeLink(std::string_view db, std::string_view key, std::string_view value);
Result<EndpointRecord> DecodeEndpoint(std::string_view db, std::string_view key, std::string_view value);

}  // namespace smv::driver::records
