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

}  // namespace smv::api::wire
