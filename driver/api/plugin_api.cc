#include "driver/api/plugin_api.h"

#include <httplib.h>
#include <spdlog/spdlog.h>

#include <algorithm>

namespace smv::api {
namespace {

using nlohmann::json;

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
  if (value.ok() && value->empty()) {
    return InvalidArgument(fmt::format("field \"{}\" is missing or empty", field));
  }
  return value;
}

Result<json> OptionalObject(const json& j, const char* field) {
  if (!j.is_object() || !j.contains(field) || j[field].is_null()) return json::object();
  if (!j[field].is_object()) {
    return InvalidArgument(fmt::format("field \"{}\": want an object, got {}", field, j[field].type_name()));
  }
  return j[field];
}

Result<std::map<std::string, std::string>> StringMap(const json& j, const char* what) {
  std::map<std::string, std::string> out;
  for (const auto& [key, value] : j.items()) {
    if (value.is_string()) {
      out[key] = value.get<std::string>();
    } else if (value.is_number() || value.is_boolean()) {
      out[key] = value.dump();
    } else {
      return InvalidArgument(fmt::format("{} \"{}\": want a string value, got {}", what, key,
                                         value.type_name()));
    }
  }
  return out;
}

Result<std::vector<driver::IpData>> ParseIpData(const json& req, const char* field) {
  std::vector<driver::IpData> out;
  if (!req.contains(field) || req[field].is_null()) return out;
  if (!req[field].is_array()) return InvalidArgument(fmt::format("field \"{}\": want an array", field));
  for (const json& item : req[field]) {
    Result<std::string> pool = OptionalString(item, "Pool");
    Result<std::string> gateway = OptionalString(item, "Gateway");
    if (!pool.ok()) return pool.status();
    if (!gateway.ok()) return gateway.status();
    std::optional<Prefix> prefix = Prefix::Parse(*pool);
    if (!prefix) return InvalidArgument(fmt::format("field \"{}.Pool\": invalid CIDR \"{}\"", field, *pool));
    driver::IpData data{*prefix, std::nullopt};
    if (!gateway->empty()) {
      std::optional<Prefix> gw = Prefix::Parse(*gateway);
      std::optional<IpAddress> ip = gw ? std::optional(gw->address()) : IpAddress::Parse(*gateway);
      if (!ip) return InvalidArgument(fmt::format("field \"{}.Gateway\": invalid address \"{}\"", field, *gateway));
      if (!prefix->Contains(*ip)) {
        return InvalidArgument(fmt::format("gateway {} is outside the subnet {} (--gateway must lie in --subnet)",
                                           ip->ToString(), prefix->ToString()));
      }
      data.gateway = *ip;
    }
    out.push_back(data);
  }
  return out;
}

json Empty() { return json::object(); }

// Always 500 for handler errors: an IPAM error with 200 is ignored by dockerd, and 500 + Err is
// read the same way by both interfaces.
constexpr int kErrorStatus = 500;

}  // namespace

Result<json> PluginApi::CreateNetwork(const json& req) {
  driver::CreateNetworkCall call;
  Result<std::string> id = RequiredString(req, "NetworkID");
  if (!id.ok()) return id.status();
  call.network_id = *id;
  Result<json> options = OptionalObject(req, "Options");
  if (!options.ok()) return options.status();
  Result<json> generic = OptionalObject(*options, "com.docker.network.generic");
  if (!generic.ok()) return generic.status();
  Result<std::map<std::string, std::string>> generic_map = StringMap(*generic, "option");
  if (!generic_map.ok()) return generic_map.status();
  call.options = *generic_map;
  if (options->contains("com.docker.network.internal")) {
    const json& internal = (*options)["com.docker.network.internal"];
    call.internal = internal.is_boolean() ? internal.get<bool>() : internal == "true";
  }
  Result<std::vector<driver::IpData>> v4 = ParseIpData(req, "IPv4Data");
  if (!v4.ok()) return v4.status();
  Result<std::vector<driver::IpData>> v6 = ParseIpData(req, "IPv6Data");
  if (!v6.ok()) return v6.status();
  call.ipv4 = *v4;
  call.ipv6 = *v6;
  SMV_RETURN_IF_ERROR(driver_.CreateNetwork(call));
  return Empty();
}

Result<json> PluginApi::CreateEndpoint(const json& req) {
  driver::CreateEndpointCall call;
  Result<std::string> network = RequiredString(req, "NetworkID");
  Result<std::string> endpoint = RequiredString(req, "EndpointID");
  if (!network.ok()) return network.status();
  if (!endpoint.ok()) return endpoint.status();
  Result<json> iface = OptionalObject(req, "Interface");
  if (!iface.ok()) return iface.status();
  Result<std::string> v4 = OptionalString(*iface, "Address");
  Result<std::string> v6 = OptionalString(*iface, "AddressIPv6");
  Result<std::string> mac = OptionalString(*iface, "MacAddress");
  for (const auto* r : {&v4, &v6, &mac}) {
    if (!r->ok()) return r->status();
  }
  call.network_id = *network;
  call.endpoint_id = *endpoint;
  call.address_v4 = *v4;
  call.address_v6 = *v6;
  call.mac = *mac;
  Result<driver::CreateEndpointResult> result = driver_.CreateEndpoint(call);
  if (!result.ok()) return result.status();
  // Never return an address, and a MAC only when dockerd gave none: anything else makes
  // dockerd roll the endpoint back ("driver modified interface ...").
  if (result->mac.empty()) return Empty();
  return json{{"Interface", {{"MacAddress", result->mac}}}};
}

Result<json> PluginApi::Join(const json& req) {
  Result<std::string> network = RequiredString(req, "NetworkID");
  Result<std::string> endpoint = RequiredString(req, "EndpointID");
  Result<std::string> sandbox = OptionalString(req, "SandboxKey");
  for (const auto* r : {&network, &endpoint, &sandbox}) {
    if (!r->ok()) return r->status();
  }
  Result<driver::JoinResult> result = driver_.Join(*network, *endpoint, *sandbox);
  if (!result.ok()) return result.status();
  // The invariant of sticky addresses: a reserved address never goes to another name. A failed
  // Join makes dockerd send DeleteEndpoint and ReleaseAddress, and the user sees the message.
  if (identity_ != nullptr) SMV_RETURN_IF_ERROR(identity_->LearnAtJoin(*network, *endpoint));
  json out = {{"InterfaceName", {{"SrcName", result->src_name}, {"DstPrefix", result->dst_prefix}}},
              // Without a Gateway dockerd would add a docker_gwbridge interface.
              {"DisableGatewayService", true}};
  if (result->gateway_v4) out["Gateway"] = result->gateway_v4->ToString();
  if (result->gateway_v6) out["GatewayIPv6"] = result->gateway_v6->ToString();
  if (!result->routes.empty()) {
    json routes = json::array();
    for (const driver::Route& route : result->routes) {
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
  }
  return out;
}

Result<json> PluginApi::RequestPool(const json& req) {
  ipam::PoolRequest request;
  Result<std::string> space = OptionalString(req, "AddressSpace");
  Result<std::string> pool = OptionalString(req, "Pool");
  Result<std::string> sub = OptionalString(req, "SubPool");
  for (const auto* r : {&space, &pool, &sub}) {
    if (!r->ok()) return r->status();
  }
  Result<json> options = OptionalObject(req, "Options");
  if (!options.ok()) return options.status();
  Result<std::map<std::string, std::string>> opts = StringMap(*options, "--ipam-opt");
  if (!opts.ok()) return opts.status();
  if (req.contains("V6") && !req["V6"].is_null() && !req["V6"].is_boolean()) {
    return InvalidArgument("field \"V6\": want a boolean");
  }
  request.address_space = *space;
  request.pool = *pool;
  request.sub_pool = *sub;
  request.options = *opts;
  request.v6 = req.value("V6", false);
  Result<ipam::PoolResult> result = ipam_.RequestPool(request);
  if (!result.ok()) return result.status();
  return json{{"PoolID", result->pool_id}, {"Pool", result->pool}, {"Data", json::object()}};
}

Result<json> PluginApi::RequestAddress(const json& req) {
  ipam::AddressCall call;
  Result<std::string> pool = RequiredString(req, "PoolID");
  Result<std::string> address = OptionalString(req, "Address");
  if (!pool.ok()) return pool.status();
  if (!address.ok()) return address.status();
  Result<json> options = OptionalObject(req, "Options");
  if (!options.ok()) return options.status();
  Result<std::string> type = OptionalString(*options, "RequestAddressType");
  Result<std::string> mac = OptionalString(*options, "com.docker.network.endpoint.macaddress");
  Result<std::string> name = OptionalString(*options, "com.docker.network.endpoint.name");
  for (const auto* r : {&type, &mac, &name}) {
    if (!r->ok()) return r->status();
  }
  call.pool_id = *pool;
  call.address = *address;
  call.gateway = *type == "com.docker.network.gateway";
  call.mac = *mac;
  call.name = name->starts_with('/') ? name->substr(1) : *name;
  if (call.name.empty() && identity_ != nullptr) call.hint_name = identity_->GuessRequester(call);
  Result<std::string> result = ipam_.RequestAddress(call);
  if (!result.ok()) return result.status();
  return json{{"Address", *result}, {"Data", json::object()}};
}

std::vector<std::pair<std::string, Handler>> PluginApi::Routes() {
  auto ids = [](const json& req, Result<std::string>& network, Result<std::string>& endpoint) {
    network = RequiredString(req, "NetworkID");
    endpoint = RequiredString(req, "EndpointID");
    if (!network.ok()) return network.status();
    return endpoint.status();
  };
  auto empty_ok = [](const json&) -> Result<json> { return Empty(); };
  return {
      {"/Plugin.Activate",
       [](const json&) -> Result<json> {
         return json{{"Implements", {"NetworkDriver", "IpamDriver"}}};
       }},
      {"/NetworkDriver.GetCapabilities",
       [](const json&) -> Result<json> {
         return json{{"Scope", "local"}, {"ConnectivityScope", "local"}};
       }},
      {"/NetworkDriver.CreateNetwork", [this](const json& r) { return CreateNetwork(r); }},
      {"/NetworkDriver.DeleteNetwork",
       [this](const json& r) -> Result<json> {
         Result<std::string> id = RequiredString(r, "NetworkID");
         if (!id.ok()) return id.status();
         SMV_RETURN_IF_ERROR(driver_.DeleteNetwork(*id));
         return Empty();
       }},
      {"/NetworkDriver.CreateEndpoint", [this](const json& r) { return CreateEndpoint(r); }},
      {"/NetworkDriver.DeleteEndpoint",
       [this, ids](const json& r) -> Result<json> {
         Result<std::string> network = std::string(), endpoint = std::string();
         SMV_RETURN_IF_ERROR(ids(r, network, endpoint));
         SMV_RETURN_IF_ERROR(driver_.DeleteEndpoint(*network, *endpoint));
         return Empty();
       }},
      {"/NetworkDriver.EndpointOperInfo",
       [ids](const json& r) -> Result<json> {
         Result<std::string> network = std::string(), endpoint = std::string();
         SMV_RETURN_IF_ERROR(ids(r, network, endpoint));
         return json{{"Value", json::object()}};  // a 404 here would make the start fail
       }},
      {"/NetworkDriver.Join", [this](const json& r) { return Join(r); }},
      {"/NetworkDriver.Leave",
       [this, ids](const json& r) -> Result<json> {
         Result<std::string> network = std::string(), endpoint = std::string();
         SMV_RETURN_IF_ERROR(ids(r, network, endpoint));
         SMV_RETURN_IF_ERROR(driver_.Leave(*network, *endpoint));
         return Empty();
       }},
      {"/NetworkDriver.ProgramExternalConnectivity", empty_ok},
      {"/NetworkDriver.RevokeExternalConnectivity", empty_ok},
      {"/NetworkDriver.DiscoverNew", empty_ok},
      {"/NetworkDriver.DiscoverDelete", empty_ok},
      {"/NetworkDriver.AllocateNetwork", [](const json&) -> Result<json> {
         return json{{"Options", json::object()}};
       }},
      {"/NetworkDriver.FreeNetwork", empty_ok},
      {"/IpamDriver.GetCapabilities",
       [](const json&) -> Result<json> {
         // The MAC arrives in RequestAddress: it identifies containers with a fixed --mac-address.
         return json{{"RequiresMACAddress", true}, {"RequiresRequestReplay", false}};
       }},
      {"/IpamDriver.GetDefaultAddressSpaces",
       [](const json&) -> Result<json> {
         return json{{"LocalDefaultAddressSpace", "static-macvlan-local"},
                     {"GlobalDefaultAddressSpace", "static-macvlan-global"}};
       }},
      {"/IpamDriver.RequestPool", [this](const json& r) { return RequestPool(r); }},
      {"/IpamDriver.ReleasePool",
       [this](const json& r) -> Result<json> {
         Result<std::string> pool = RequiredString(r, "PoolID");
         if (!pool.ok()) return pool.status();
         SMV_RETURN_IF_ERROR(ipam_.ReleasePool(*pool));
         return Empty();
       }},
      {"/IpamDriver.RequestAddress", [this](const json& r) { return RequestAddress(r); }},
      {"/StaticMacvlan.ListReservations", [this](const json& r) { return ListReservations(r); }},
      {"/StaticMacvlan.Reserve", [this](const json& r) { return Reserve(r); }},
      {"/StaticMacvlan.Release", [this](const json& r) { return Release(r); }},
      {"/IpamDriver.ReleaseAddress",
       [this](const json& r) -> Result<json> {
         Result<std::string> pool = RequiredString(r, "PoolID");
         Result<std::string> address = RequiredString(r, "Address");
         if (!pool.ok()) return pool.status();
         if (!address.ok()) return address.status();
         SMV_RETURN_IF_ERROR(ipam_.ReleaseAddress(*pool, *address));
         return Empty();
       }},
  };
}

Result<std::vector<Prefix>> PluginApi::NetworkSubnets(const std::string& network) {
  std::vector<driver::NetworkRecord> matches;
  for (const driver::NetworkRecord& n : driver_.Networks()) {
    if (n.id == network || (network.size() >= 6 && n.id.starts_with(network))) matches.push_back(n);
  }
  if (matches.empty() && engine_ != nullptr) {
    Result<identity::EngineNetwork> named = engine_->InspectNetwork(network, identity::Millis(2000));
    if (named.ok()) {
      if (std::optional<driver::NetworkRecord> n = driver_.FindNetwork(named->id)) matches.push_back(*n);
    }
  }
  if (matches.size() != 1) {
    return NotFound(fmt::format("network \"{}\" is not a static-macvlan network{}", network,
                                matches.empty() ? "" : " (the id prefix is ambiguous)"));
  }
  std::vector<Prefix> subnets;
  for (const auto* data : {&matches[0].ipv4, &matches[0].ipv6}) {
    for (const driver::IpData& d : *data) subnets.push_back(d.pool);
  }
  return subnets;
}

Result<json> PluginApi::ListReservations(const json& req) {
  Result<std::string> network = OptionalString(req, "Network");
  if (!network.ok()) return network.status();
  std::vector<Prefix> subnets;
  if (!network->empty()) {
    Result<std::vector<Prefix>> found = NetworkSubnets(*network);
    if (!found.ok()) return found.status();
    subnets = *found;
  }
  json out = json::array();
  for (const ipam::ReservationView& v : ipam_.ListReservations()) {
    if (!subnets.empty() && std::find_if(subnets.begin(), subnets.end(), [&](const Prefix& p) {
                              return p.ToString() == v.pool_subnet;
                            }) == subnets.end()) {
      continue;
    }
    std::string state = v.drifted_to ? "drifted" : v.in_use ? "in use" : "reserved";
    json r = {{"Name", v.record.name}, {"Address", v.record.address.ToString()},
              {"MacAddress", v.record.mac}, {"Pool", v.record.pool_id}, {"State", state},
              {"Since", v.record.since}, {"GoneSince", v.record.gone_since}};
    if (v.drifted_to) r["DriftedTo"] = v.drifted_to->ToString();
    out.push_back(r);
  }
  return json{{"Reservations", out}};
}

Result<json> PluginApi::Reserve(const json& req) {
  Result<std::string> name = RequiredString(req, "Name");
  Result<std::string> address = RequiredString(req, "Address");
  Result<std::string> network = RequiredString(req, "Network");
  for (const auto* r : {&name, &address, &network}) {
    if (!r->ok()) return r->status();
  }
  std::optional<IpAddress> ip = IpAddress::Parse(*address);
  if (!ip) return InvalidArgument(fmt::format("invalid address \"{}\": want an address such as 192.0.2.10", *address));
  Result<std::vector<Prefix>> subnets = NetworkSubnets(*network);
  if (!subnets.ok()) return subnets.status();
  for (const Prefix& subnet : *subnets) {
    if (!subnet.Contains(*ip)) continue;
    std::vector<std::string> pools = ipam_.PoolsOnSubnet(subnet);
    if (pools.size() != 1) {
      return FailedPrecondition(fmt::format("network \"{}\" has no single address pool for {}", *network,
                                            subnet.ToString()));
    }
    SMV_RETURN_IF_ERROR(ipam_.Reserve(pools.front(), *name, *ip));
    return json{{"Pool", pools.front()}};
  }
  return InvalidArgument(fmt::format("address {} is outside every subnet of network \"{}\"", *address, *network));
}

Result<json> PluginApi::Release(const json& req) {
  Result<std::string> target = RequiredString(req, "Target");
  if (!target.ok()) return target.status();
  Result<int> released = ipam_.Release(*target);
  if (!released.ok()) return released.status();
  if (*released == 0) {
    return NotFound(fmt::format("no reservation for \"{}\" (see static-macvlan reservations ls)", *target));
  }
  return json{{"Released", *released}};
}

PluginApi::PluginApi(driver::DriverService& driver, ipam::IpamService& ipam,
                     identity::IdentityService* identity, identity::EngineApi* engine)
    : driver_(driver), ipam_(ipam), identity_(identity), engine_(engine) {
  for (auto& [route, handler] : Routes()) table_.emplace(route, std::move(handler));
}

namespace {

// Every body we send. Messages quote request values, sometimes cut to a few bytes (ids), which
// can split a UTF-8 sequence; replace such bytes rather than throw (found by fuzzing).
std::string ToWire(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

}  // namespace

std::pair<int, std::string> PluginApi::Dispatch(const std::string& path, const std::string& body) {
  auto it = table_.find(path);
  if (it == table_.end()) {
    return {404, ToWire(json{{"Err", fmt::format("unknown plugin endpoint \"{}\"", path)}})};
  }
  const auto started = std::chrono::steady_clock::now();
  // dockerd sends an empty body (not "{}") for calls without arguments, and no Content-Type.
  json request = body.empty() ? json::object() : json::parse(body, nullptr, false);
  Result<json> out = request.is_discarded()
                         ? Result<json>(InvalidArgument("request body is not JSON"))
                         : request.is_object() || request.is_null()
                               ? it->second(request.is_null() ? json::object() : request)
                               : Result<json>(InvalidArgument("request body is not a JSON object"));
  if (out.ok()) {
    spdlog::debug("{} ok took_us={} request={} response={}", path,
                  std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - started).count(),
                  body, ToWire(*out));
    return {200, ToWire(*out)};
  }
  spdlog::warn("{} failed: {}", path.substr(1), out.status().message());  // the only log line
  return {kErrorStatus, ToWire(json{{"Err", out.status().message()}})};
}

void InstallRoutes(httplib::Server& server, PluginApi& api) {
  server.set_payload_max_length(kMaxBodyBytes);
  auto handle = [&api](const httplib::Request& req, httplib::Response& res) {
    auto [status, body] = api.Dispatch(req.path, req.body);
    res.status = status;
    res.set_content(body, kPluginContentType);
  };
  server.Post(R"(/.*)", handle);
  server.Get(R"(/.*)", [](const httplib::Request& req, httplib::Response& res) {
    res.status = 404;
    res.set_content(ToWire(json{{"Err", fmt::format("unknown plugin endpoint \"{}\": dockerd only POSTs",
                                                    req.path)}}),
                    kPluginContentType);
  });
  server.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return;
    const std::string message =
        res.status == 413 ? fmt::format("request body larger than {} bytes", kMaxBodyBytes)
                          : fmt::format("request to \"{}\" failed with HTTP {}", req.path, res.status);
    res.set_content(ToWire(json{{"Err", message}}), kPluginContentType);
  });
}

}  // namespace smv::api
