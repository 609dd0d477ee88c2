#include "daemon/api/wire.h"

#include <algorithm>
#include <cctype>

namespace smv::api::wire {
namespace {

// Field readers that turn wrong JSON types into errors instead of exceptions.
Result<std::string> OptionalString(const json& j, const char* field) {
  if (!j.is_object() || !j.contains(field) || j[field].is_null()) return std::string();
  if (!j[field].is_string()) {
    return InvalidArgument(fmt::format("field \"{}\": want a string, got {}", field, j[field].type_name()));
  }
  return j[field].get<std::string>();
}

Result<std::string> RequiredString(const json& j, const char* field) {
  Result<std::string> value = OptionalString(j, field);
  if (value.ok() && value->empty()) return InvalidArgument(fmt::format("field \"{}\" is missing or empty", field));
  return value;
}

Result<json> OptionalObject(const json& j, const char* field) {
  if (!j.is_object() || !j.contains(field) || j[field].is_null()) return json::object();
  if (!j[field].is_object()) {
    return InvalidArgument(fmt::format("field \"{}\": want an object, got {}", field, j[field].type_name()));
  }
  return j[field];
}

// A request's object of options as strings: numbers and booleans as their JSON text, anything
// else refused naming `what` and the key (docker_engine's StringValuesOf reads the engine's own
// answers leniently instead).
Result<std::map<std::string, std::string>> StringifiedMap(const json& j, const char* what) {
  std::map<std::string, std::string> out;
  for (const auto& [key, value] : j.items()) {
    if (value.is_string()) {
      out[key] = value.get<std::string>();
    } else if (value.is_number() || value.is_boolean()) {
      out[key] = value.dump();
    } else {
      return InvalidArgument(fmt::format("{} \"{}\": want a string value, got {}", what, key, value.type_name()));
    }
  }
  return out;
}

// Reads several fields at once; the first error wins, in the order given.
template <typename... R>
Status FirstError(const R&... results) {
  Status first;
  ((first = first.ok() ? results.status() : first), ...);
  return first;
}

// An address given with or without a prefix length ("192.0.2.1/24" or "192.0.2.1").
std::optional<IpAddress> AddressOf(const std::string& text) {
  std::optional<Prefix> prefix = Prefix::Parse(text);
  return prefix ? std::optional(prefix->address()) : IpAddress::Parse(text);
}

Result<PoolOrigin> DecodePoolOrigin(const json& item, const char* field) {
  Result<std::string> pool = OptionalString(item, "Pool");
  Result<std::string> gateway = OptionalString(item, "Gateway");
  Result<std::string> space = OptionalString(item, "AddressSpace");
  Result<json> aux = OptionalObject(item, "AuxAddresses");
  SMV_RETURN_IF_ERROR(FirstError(pool, gateway, space, aux));
  std::optional<Prefix> prefix = Prefix::Parse(*pool);
  if (!prefix) return InvalidArgument(fmt::format("field \"{}.Pool\": invalid CIDR \"{}\"", field, *pool));
  PoolOrigin origin{.data = {*prefix, std::nullopt}, .address_space = *space, .aux = {}};
  if (!gateway->empty()) {
    std::optional<IpAddress> ip = AddressOf(*gateway);
    if (!ip) return InvalidArgument(fmt::format("field \"{}.Gateway\": invalid address \"{}\"", field, *gateway));
    if (!prefix->Contains(*ip)) {
      return InvalidArgument(fmt::format("gateway {} is outside the subnet {} (--gateway must lie in --subnet)",
                                         ip->ToString(), prefix->ToString()));
    }
    origin.data.gateway = *ip;
  }
  Result<std::map<std::string, std::string>> aux_map = StringifiedMap(*aux, "aux address");
  if (!aux_map.ok()) return aux_map.status();
  for (const auto& [name, address] : *aux_map) {
    std::optional<IpAddress> ip = AddressOf(address);
    origin.aux[name] = ip ? ip->ToString() : address;
  }
  return origin;
}

Result<std::vector<PoolOrigin>> DecodeIpData(const json& req, const char* field) {
  std::vector<PoolOrigin> out;
  if (!req.contains(field) || req[field].is_null()) return out;
  if (!req[field].is_array()) return InvalidArgument(fmt::format("field \"{}\": want an array", field));
  for (const json& item : req[field]) {
    Result<PoolOrigin> origin = DecodePoolOrigin(item, field);
    if (!origin.ok()) return origin.status();
    out.push_back(*origin);
  }
  return out;
}

}  // namespace

Result<CreateNetworkRequest> DecodeCreateNetwork(const json& req) {
  CreateNetworkRequest out;
  Result<std::string> id = RequiredString(req, "NetworkID");
  if (!id.ok()) return id.status();
  Result<json> options = OptionalObject(req, "Options");
  if (!options.ok()) return options.status();
  Result<json> generic = OptionalObject(*options, "com.docker.network.generic");
  if (!generic.ok()) return generic.status();
  Result<std::map<std::string, std::string>> generic_map = StringifiedMap(*generic, "option");
  if (!generic_map.ok()) return generic_map.status();
  out.call.network_id = *id;
  out.call.options = *generic_map;
  if (options->contains("com.docker.network.internal")) {
    const json& internal = (*options)["com.docker.network.internal"];
    out.call.internal = internal.is_boolean() ? internal.get<bool>() : internal == "true";
  }
  Result<std::vector<PoolOrigin>> v4 = DecodeIpData(req, "IPv4Data");
  if (!v4.ok()) return v4.status();
  Result<std::vector<PoolOrigin>> v6 = DecodeIpData(req, "IPv6Data");
  if (!v6.ok()) return v6.status();
  out.v4 = *v4;
  out.v6 = *v6;
  for (const PoolOrigin& o : out.v4) out.call.ipv4.push_back(o.data);
  for (const PoolOrigin& o : out.v6) out.call.ipv6.push_back(o.data);
  return out;
}

Result<std::string> DecodeNetworkId(const json& req) { return RequiredString(req, "NetworkID"); }

Result<driver::CreateEndpointCall> DecodeCreateEndpoint(const json& req) {
  Result<EndpointRef> ref = DecodeEndpointRef(req);
  if (!ref.ok()) return ref.status();
  Result<json> iface = OptionalObject(req, "Interface");
  if (!iface.ok()) return iface.status();
  Result<std::string> v4 = OptionalString(*iface, "Address");
  Result<std::string> v6 = OptionalString(*iface, "AddressIPv6");
  Result<std::string> mac = OptionalString(*iface, "MacAddress");
  SMV_RETURN_IF_ERROR(FirstError(v4, v6, mac));
  return driver::CreateEndpointCall{.network_id = ref->network_id,
                                    .endpoint_id = ref->endpoint_id,
                                    .address_v4 = *v4,
                                    .address_v6 = *v6,
                                    .mac = *mac};
}

Result<EndpointRef> DecodeEndpointRef(const json& req) {
  Result<std::string> network = RequiredString(req, "NetworkID");
  Result<std::string> endpoint = RequiredString(req, "EndpointID");
  SMV_RETURN_IF_ERROR(FirstError(network, endpoint));
  return EndpointRef{*network, *endpoint};
}

Result<JoinCall> DecodeJoin(const json& req) {
  Result<EndpointRef> ref = DecodeEndpointRef(req);
  Result<std::string> sandbox = OptionalString(req, "SandboxKey");
  SMV_RETURN_IF_ERROR(FirstError(ref, sandbox));
  return JoinCall{*ref, *sandbox};
}

json EncodeCreateEndpoint(const driver::CreateEndpointResult& result) {
  if (result.mac.empty()) return json::object();
  return json{{"Interface", {{"MacAddress", result.mac}}}};
}

json EncodeJoin(const driver::JoinResult& result) {
  json out = {{"InterfaceName", {{"SrcName", result.src_name}, {"DstPrefix", result.dst_prefix}}},
              // Without a Gateway dockerd would add a docker_gwbridge interface.
              {"DisableGatewayService", true}};
  if (result.gateway_v4) out["Gateway"] = result.gateway_v4->ToString();
  if (result.gateway_v6) out["GatewayIPv6"] = result.gateway_v6->ToString();
  if (result.routes.empty()) return out;
  json routes = json::array();
  for (const driver::Route& route : result.routes) {
    json r = {{"Destination", route.destination.ToString()}};
    if (route.via) {
      r["RouteType"] = 0;  // via a next hop
      r["NextHop"] = route.via->ToString();
    } else {
      r["RouteType"] = 1;  // on-link
    }
    routes.push_back(r);
  }
  out["StaticRoutes"] = routes;
  return out;
}

Result<ipam::PoolRequest> DecodeRequestPool(const json& req) {
  Result<std::string> space = OptionalString(req, "AddressSpace");
  Result<std::string> pool = OptionalString(req, "Pool");
  Result<std::string> sub = OptionalString(req, "SubPool");
  Result<json> options = OptionalObject(req, "Options");
  SMV_RETURN_IF_ERROR(FirstError(space, pool, sub, options));
  Result<std::map<std::string, std::string>> opts = StringifiedMap(*options, "--ipam-opt");
  if (!opts.ok()) return opts.status();
  if (req.contains("V6") && !req["V6"].is_null() && !req["V6"].is_boolean()) {
    return InvalidArgument("field \"V6\": want a boolean");
  }
  return ipam::PoolRequest{.address_space = *space,
                           .pool = *pool,
                           .sub_pool = *sub,
                           .options = *opts,
                           .v6 = req.contains("V6") && req["V6"].is_boolean() && req["V6"].get<bool>()};
}

Result<ipam::AddressCall> DecodeRequestAddress(const json& req) {
  Result<std::string> pool = RequiredString(req, "PoolID");
  Result<std::string> address = OptionalString(req, "Address");
  Result<json> options = OptionalObject(req, "Options");
  SMV_RETURN_IF_ERROR(FirstError(pool, address, options));
  Result<std::string> type = OptionalString(*options, "RequestAddressType");
  Result<std::string> mac = OptionalString(*options, "com.docker.network.endpoint.macaddress");
  Result<std::string> name = OptionalString(*options, "com.docker.network.endpoint.name");
  SMV_RETURN_IF_ERROR(FirstError(type, mac, name));
  return ipam::AddressCall{.pool_id = *pool,
                           .address = *address,
                           .gateway = *type == "com.docker.network.gateway",
                           .name = name->starts_with('/') ? name->substr(1) : *name,
                           .hint_name = "",
                           .mac = *mac};
}

Result<std::string> DecodePoolId(const json& req) { return RequiredString(req, "PoolID"); }

Result<ReleaseAddressCall> DecodeReleaseAddress(const json& req) {
  Result<std::string> pool = RequiredString(req, "PoolID");
  Result<std::string> address = RequiredString(req, "Address");
  SMV_RETURN_IF_ERROR(FirstError(pool, address));
  return ReleaseAddressCall{*pool, *address};
}

json EncodeRequestPool(const ipam::PoolResult& result) {
  return json{{"PoolID", result.pool_id}, {"Pool", result.pool}, {"Data", json::object()}};
}

json EncodeRequestAddress(const std::string& address) { return json{{"Address", address}, {"Data", json::object()}}; }

Result<std::string> DecodeListReservations(const json& req) { return OptionalString(req, "Network"); }

bool IsContainerName(std::string_view name) {
  if (name.starts_with('/')) name.remove_prefix(1);
  auto alnum = [](char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0; };
  return name.size() >= 2 && alnum(name.front()) && std::all_of(name.begin() + 1, name.end(), [&](char c) {
           return alnum(c) || c == '_' || c == '.' || c == '-';
         });
}

Result<ReserveCall> DecodeReserve(const json& req) {
  Result<std::string> name = RequiredString(req, "Name");
  Result<std::string> address = RequiredString(req, "Address");
  Result<std::string> network = RequiredString(req, "Network");
  SMV_RETURN_IF_ERROR(FirstError(name, address, network));
  if (!IsContainerName(*name)) {
    return InvalidArgument(
        fmt::format("invalid container name \"{}\" (field \"Name\"): want {}", *name, kContainerNameRule));
  }
  return ReserveCall{name->starts_with('/') ? name->substr(1) : *name, *address, *network};
}

Result<std::string> DecodeRelease(const json& req) { return RequiredString(req, "Target"); }

Result<std::string> DecodeReleaseNode(const json& req) { return RequiredString(req, "Node"); }

json EncodeReserved(const std::string& pool_id) { return json{{"Pool", pool_id}}; }

json EncodeReleased(int count) { return json{{"Released", count}}; }

json EncodeListReservations(const std::string& network) { return json{{"Network", network}}; }

json EncodeReserve(const ReserveCall& call) {
  return json{{"Name", call.name}, {"Address", call.address}, {"Network", call.network}};
}

json EncodeRelease(const std::string& name_or_address) { return json{{"Target", name_or_address}}; }

json EncodeReleaseNode(const std::string& node) { return json{{"Node", node}}; }

namespace {

// A reply's field as sent; "" (or 0) when absent or mistyped.
std::string TextOf(const json& j, const char* field) {
  return j.is_object() && j.contains(field) && j[field].is_string() ? j[field].get<std::string>() : "";
}
int64_t NumberOf(const json& j, const char* field) {
  return j.is_object() && j.contains(field) && j[field].is_number_integer() ? j[field].get<int64_t>() : 0;
}

}  // namespace

std::vector<ReservationReply> DecodeReservations(const json& reply) {
  std::vector<ReservationReply> out;
  if (!reply.is_object() || !reply.contains("Reservations") || !reply["Reservations"].is_array()) return out;
  for (const json& r : reply["Reservations"]) {
    out.push_back({.name = TextOf(r, "Name"),
                   .address = TextOf(r, "Address"),
                   .mac = TextOf(r, "MacAddress"),
                   .pool = TextOf(r, "Pool"),
                   .state = TextOf(r, "State"),
                   .node = TextOf(r, "Node"),
                   .drifted_to = TextOf(r, "DriftedTo"),
                   .since = NumberOf(r, "Since"),
                   .gone_since = NumberOf(r, "GoneSince")});
  }
  return out;
}

int64_t DecodeReleased(const json& reply) { return NumberOf(reply, "Released"); }

json EncodeError(const std::string& message) { return json{{"Err", message}}; }

std::string DecodeError(const json& reply) { return TextOf(reply, "Err"); }

json EncodeReservations(const std::vector<ipam::ReservationView>& views) {
  json out = json::array();
  for (const ipam::ReservationView& v : views) {
    const std::string state = v.drifted_to ? "drifted" : v.in_use ? "in use" : "reserved";
    json r = {{"Name", v.record.name},
              {"Address", v.record.address.ToString()},
              {"MacAddress", v.record.mac},
              {"Pool", v.record.pool_id},
              {"State", state},
              {"Since", v.record.since},
              {"GoneSince", v.record.gone_since}};
    if (v.drifted_to) r["DriftedTo"] = v.drifted_to->ToString();
    if (!v.node.empty()) r["Node"] = v.node;
    out.push_back(r);
  }
  return json{{"Reservations", out}};
}

}  // namespace smv::api::wire
