#pragma once
// Wire decoding and encoding: the only code that knows the JSON field names of the plugin
// protocol (docs/plugin-protocol.md). Each request is turned into a call struct in one place per
// API; errors name the field ("field \"PoolID\" is missing or empty"). Never throws.

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/status.h"
#include "driver/driver_service.h"
#include "ipam/ipam_api.h"

namespace smv::api::wire {

using nlohmann::json;

// ---- NetworkDriver ----

// Where one subnet of a CreateNetwork came from, as dockerd tells it.
struct PoolOrigin {
  driver::IpData data;
  std::string address_space;               // our local space, or Docker's "LocalDefault"
  std::map<std::string, std::string> aux;  // --aux-address name -> address (no prefix length)
};

struct CreateNetworkRequest {
  driver::CreateNetworkCall call;
  std::vector<PoolOrigin> v4;
  std::vector<PoolOrigin> v6;
};

struct EndpointRef {
  std::string network_id;
  std::string endpoint_id;
};

struct JoinCall {
  EndpointRef endpoint;
  std::string sandbox_key;
};

Result<CreateNetworkRequest> DecodeCreateNetwork(const json& req);
Result<std::string> DecodeNetworkId(const json& req);
Result<driver::CreateEndpointCall> DecodeCreateEndpoint(const json& req);
Result<EndpointRef> DecodeEndpointRef(const json& req);
Result<JoinCall> DecodeJoin(const json& req);

// A MAC only when dockerd sent none: anything else makes dockerd roll the endpoint back.
json EncodeCreateEndpoint(const driver::CreateEndpointResult& result);
json EncodeJoin(const driver::JoinResult& result);

// ---- IpamDriver ----

struct ReleaseAddressCall {
  std::string pool_id;
  std::string address;
};

Result<ipam::PoolRequest> DecodeRequestPool(const json& req);
Result<ipam::AddressCall> DecodeRequestAddress(const json& req);
Result<std::string> DecodePoolId(const json& req);
Result<ReleaseAddressCall> DecodeReleaseAddress(const json& req);

json EncodeRequestPool(const ipam::PoolResult& result);
json EncodeRequestAddress(const std::string& address);

// ---- StaticMacvlan (the CLI's calls on the same socket) ----
// Both sides use these: the daemon decodes requests and encodes replies, the CLI encodes
// requests and decodes replies, so each field name is spelled here only.

inline constexpr const char* kListReservationsPath = "/StaticMacvlan.ListReservations";
inline constexpr const char* kReservePath = "/StaticMacvlan.Reserve";
inline constexpr const char* kReleasePath = "/StaticMacvlan.Release";
inline constexpr const char* kReleaseNodePath = "/StaticMacvlan.ReleaseNode";

// Docker's rule for a container name (moby's daemon: ^/?[a-zA-Z0-9][a-zA-Z0-9_.-]+$), in words.
inline constexpr const char* kContainerNameRule =
    "a letter or digit, then one or more letters, digits, \"_\", \".\" or \"-\" (as Docker names containers)";
// Whether Docker could give a container this name; a leading "/" (Docker's own spelling) is allowed.
bool IsContainerName(std::string_view name);

struct ReserveCall {
  std::string name;
  std::string address;
  std::string network;
};

Result<std::string> DecodeListReservations(const json& req);  // network filter, may be ""
Result<ReserveCall> DecodeReserve(const json& req);           // a name Docker allows, without a leading "/"
Result<std::string> DecodeRelease(const json& req);           // name or address
Result<std::string> DecodeReleaseNode(const json& req);       // a node of a shared book

json EncodeReservations(const std::vector<ipam::ReservationView>& views);
json EncodeReserved(const std::string& pool_id);  // {"Pool": ...}
json EncodeReleased(int count);                   // {"Released": n}

// The CLI's side: requests it sends, replies it reads. Readers take what the daemon sent and
// leave a missing or mistyped field empty (0), as an older daemon may send fewer fields.
json EncodeListReservations(const std::string& network);
json EncodeReserve(const ReserveCall& call);
json EncodeRelease(const std::string& name_or_address);
json EncodeReleaseNode(const std::string& node);

// One reservation as ListReservations sends it.
struct ReservationReply {
  std::string name;
  std::string address;
  std::string mac;  // "" when none is known
  std::string pool;
  std::string state;       // "reserved", "in use" or "drifted"
  std::string node;        // the node holding it in a shared book, or ""
  std::string drifted_to;  // the address the name holds instead, or ""
  int64_t since = 0;       // unix seconds; 0 unknown
  int64_t gone_since = 0;  // unix seconds since no container carries the name; 0 while one does
};
std::vector<ReservationReply> DecodeReservations(const json& reply);
int64_t DecodeReleased(const json& reply);

// ---- Errors (every API) ----

// A failed call's body: {"Err": message}.
json EncodeError(const std::string& message);
// The message of an error body, or "" when `reply` is not one.
std::string DecodeError(const json& reply);

}  // namespace smv::api::wire
