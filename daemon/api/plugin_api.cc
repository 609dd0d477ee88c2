#include "daemon/api/plugin_api.h"

#include <httplib.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cmath>
#include <map>
#include <set>

#include "common/log.h"
#include "common/metrics/metrics.h"
#include "common/shell_word.h"
#include "daemon/api/http_body.h"
#include "daemon/api/json_depth.h"
#include "daemon/reconciler.h"

namespace smv::api {
namespace {

using nlohmann::json;

json Empty() { return json::object(); }

// Always 500 for handler errors: an IPAM error with 200 is ignored by dockerd, and 500 + Err is
// read the same way by both interfaces.
constexpr int kErrorStatus = 500;
constexpr engine::Millis kNetworkLookupTimeout{2000};
// An id prefix shorter than this never names a network (docker accepts unique prefixes too).
constexpr size_t kMinIdPrefix = 6;
// The address spaces of Docker's built-in IPAM drivers.
const std::set<std::string, std::less<>> kDockerAddressSpaces = {"LocalDefault", "GlobalDefault"};

// Every body we send. Messages quote request values, sometimes cut to a few bytes (ids), which
// can split a UTF-8 sequence; replace such bytes rather than throw (found by fuzzing).
std::string ToWire(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

// A whole Docker id (64 hex digits): one of ours or none, with or without dockerd.
bool IsFullId(const std::string& text) {
  return text.size() == 64 && std::all_of(text.begin(), text.end(),
                                          [](char c) { return std::isxdigit(static_cast<unsigned char>(c)) != 0; });
}

// The `docker network create` that gives this network our IPAM, from what dockerd sent.
std::string CorrectedCommand(const wire::CreateNetworkRequest& r) {
  std::string cmd = "docker network create -d static-macvlan --ipam-driver static-macvlan";
  if (!r.v6.empty()) cmd += " --ipv6";
  for (const auto* family : {&r.v4, &r.v6}) {
    for (const wire::PoolOrigin& o : *family) {
      cmd += " --subnet " + o.data.pool.ToString();
      if (o.data.gateway) cmd += " --gateway " + o.data.gateway->ToString();
      for (const auto& [name, address] : o.aux) cmd += " --aux-address " + ShellWord(name + "=" + address);
    }
  }
  if (r.call.internal) cmd += " --internal";
  for (const auto& [key, value] : r.call.options) {
    if (key != driver::kOptIpam) cmd += " -o " + ShellWord(key + "=" + value);
  }
  return cmd + " NAME";
}

// The request as a JSON object; `body` is known not to nest too deeply.
Result<json> DecodeBody(const std::string& body) {
  // dockerd sends an empty body (not "{}") for calls without arguments, and no Content-Type.
  if (body.empty()) return json::object();
  json request = json::parse(body, nullptr, false);
  if (request.is_discarded()) return InvalidArgument("request body is not JSON");
  if (request.is_null()) return json::object();
  if (!request.is_object()) return InvalidArgument("request body is not a JSON object");
  return request;
}

}  // namespace

Status AdmitIpam(const wire::CreateNetworkRequest& request, const driver::NetworkOptions& options,
                 const std::function<bool(const Prefix&)>& has_pool) {
  std::string foreign_space;
  bool foreign = false;
  for (const auto* family : {&request.v4, &request.v6}) {
    for (const wire::PoolOrigin& o : *family) {
      // Docker's own IPAM names its spaces; any other space must have asked us for the pool.
      const bool ours = !kDockerAddressSpaces.contains(o.address_space) && has_pool(o.data.pool);
      if (!ours && !foreign) foreign_space = o.address_space;
      foreign = foreign || !ours;
    }
  }
  if (!foreign) return OkStatus();
  if (options.docker_ipam) {
    spdlog::warn(
        "network {} uses Docker's IPAM (-o ipam=docker): containers get addresses from dockerd, and "
        "names will not keep their addresses",
        ShortId(request.call.network_id));
    return OkStatus();
  }
  const std::string source = kDockerAddressSpaces.contains(foreign_space)
                                 ? fmt::format("Docker's default IPAM (address space \"{}\")", foreign_space)
                                 : "an IPAM other than static-macvlan's (it never asked us for this pool)";
  return FailedPrecondition(fmt::format(
      "this network's addresses would come from {}, so containers would not keep their addresses by name; "
      "create it with static-macvlan's IPAM: {} (or add -o ipam=docker to use Docker's IPAM knowingly, without "
      "sticky addresses)",
      source, CorrectedCommand(request)));
}

Result<json> PluginApi::CreateNetwork(const json& req) {
  Result<wire::CreateNetworkRequest> request = wire::DecodeCreateNetwork(req);
  if (!request.ok()) return request.status();
  auto has_pool = [this](const Prefix& subnet) { return !ipam_.PoolsOnSubnet(subnet).empty(); };
  std::optional<std::pair<std::string, IpAddress>> host_lease;  // pool, host_ip: undone if the create fails
  auto admit = [&](const driver::NetworkOptions& options) -> Status {
    SMV_RETURN_IF_ERROR(AdmitIpam(*request, options, has_pool));
    for (const auto* family : {&request->v4, &request->v6}) {
      for (const wire::PoolOrigin& o : *family) SMV_RETURN_IF_ERROR(ipam_.AgreeAuxAddresses(o.data.pool, o.aux));
    }
    if (options.host_ip && !options.docker_ipam) {
      Result<std::string> pool = ReserveHostAddress(*request, *options.host_ip);
      if (!pool.ok()) return pool.status();
      host_lease.emplace(*pool, *options.host_ip);
    }
    return OkStatus();
  };
  Status created = driver_.CreateNetwork(request->call, admit);
  if (!created.ok() && host_lease) {
    if (Status s = ipam_.ReleaseAddress(host_lease->first, host_lease->second.ToString()); !s.ok()) {
      spdlog::warn("rollback: host_ip {} not released: {}", host_lease->second.ToString(), s.message());
    }
  }
  SMV_RETURN_IF_ERROR(created);
  return Empty();
}

Result<std::string> PluginApi::ReserveHostAddress(const wire::CreateNetworkRequest& request, const IpAddress& host_ip) {
  for (const auto* family : {&request.v4, &request.v6}) {
    for (const wire::PoolOrigin& o : *family) {
      if (!o.data.pool.Contains(host_ip)) continue;
      const std::vector<std::string> pools = ipam_.PoolsOnSubnet(o.data.pool);
      if (pools.size() != 1) break;
      Result<std::string> held = ipam_.RequestAddress({.pool_id = pools.front(), .address = host_ip.ToString()});
      if (!held.ok()) return held.status().Annotate(fmt::format("option \"host_ip\" ({})", host_ip.ToString()));
      return pools.front();
    }
  }
  return InvalidArgument(fmt::format(
      "invalid value \"{}\" for option \"host_ip\": want an address inside the network's subnet", host_ip.ToString()));
}

Result<json> PluginApi::Join(const json& req) {
  Result<wire::JoinCall> call = wire::DecodeJoin(req);
  if (!call.ok()) return call.status();
  const wire::EndpointRef& ep = call->endpoint;
  Result<driver::JoinResult> result = driver_.Join(ep.network_id, ep.endpoint_id, call->sandbox_key);
  if (!result.ok()) return result.status();
  // The invariant of sticky addresses: a reserved address never goes to another name. A failed
  // Join makes dockerd send DeleteEndpoint and ReleaseAddress, and the user sees the message.
  if (identity_ != nullptr) SMV_RETURN_IF_ERROR(identity_->LearnAtJoin(ep.network_id, ep.endpoint_id));
  return wire::EncodeJoin(*result);
}

Result<json> PluginApi::RequestAddress(const json& req) {
  Result<ipam::AddressCall> call = wire::DecodeRequestAddress(req);
  if (!call.ok()) return call.status();
  if (call->name.empty() && identity_ != nullptr) call->hint_name = identity_->GuessRequester(*call);
  Result<std::string> result = ipam_.RequestAddress(*call);
  if (!result.ok()) return result.status();
  return wire::EncodeRequestAddress(*result);
}

std::vector<std::pair<std::string, Handler>> PluginApi::ActivationRoutes() {
  return {
      {"/Plugin.Activate",
       [](const json&) -> Result<json> {
         return json{{"Implements", {"NetworkDriver", "IpamDriver"}}};
       }},
      {"/NetworkDriver.GetCapabilities",
       [](const json&) -> Result<json> {
         return json{{"Scope", "local"}, {"ConnectivityScope", "local"}};
       }},
      {"/IpamDriver.GetCapabilities",
       [this](const json&) -> Result<json> {
         return json{{"RequiresMACAddress", mac_identity_}, {"RequiresRequestReplay", false}};
       }},
      {"/IpamDriver.GetDefaultAddressSpaces",
       [](const json&) -> Result<json> {
         return json{{"LocalDefaultAddressSpace", kLocalAddressSpace},
                     {"GlobalDefaultAddressSpace", kGlobalAddressSpace}};
       }},
  };
}

std::vector<std::pair<std::string, Handler>> PluginApi::DriverRoutes() {
  auto empty_ok = [](const json&) -> Result<json> { return Empty(); };
  auto on_endpoint = [](auto fn) {
    return [fn](const json& r) -> Result<json> {
      Result<wire::EndpointRef> ref = wire::DecodeEndpointRef(r);
      if (!ref.ok()) return ref.status();
      return fn(*ref);
    };
  };
  return {
      {"/NetworkDriver.CreateNetwork", [this](const json& r) { return CreateNetwork(r); }},
      {"/NetworkDriver.DeleteNetwork",
       [this](const json& r) -> Result<json> {
         Result<std::string> id = wire::DecodeNetworkId(r);
         if (!id.ok()) return id.status();
         const std::optional<driver::NetworkRecord> network = driver_.FindNetwork(*id);
         SMV_RETURN_IF_ERROR(driver_.DeleteNetwork(*id));
         if (network) daemon::ReleaseHostAddress(ipam_, *network);
         return Empty();
       }},
      {"/NetworkDriver.CreateEndpoint",
       [this](const json& r) -> Result<json> {
         Result<driver::CreateEndpointCall> call = wire::DecodeCreateEndpoint(r);
         if (!call.ok()) return call.status();
         Result<driver::CreateEndpointResult> result = driver_.CreateEndpoint(*call);
         if (!result.ok()) return result.status();
         return wire::EncodeCreateEndpoint(*result);
       }},
      {"/NetworkDriver.DeleteEndpoint", on_endpoint([this](const wire::EndpointRef& ep) -> Result<json> {
         SMV_RETURN_IF_ERROR(driver_.DeleteEndpoint(ep.network_id, ep.endpoint_id));
         return Empty();
       })},
      // A 404 here would make the start fail.
      {"/NetworkDriver.EndpointOperInfo", on_endpoint([](const wire::EndpointRef&) -> Result<json> {
         return json{{"Value", json::object()}};
       })},
      {"/NetworkDriver.Join", [this](const json& r) { return Join(r); }},
      {"/NetworkDriver.Leave", on_endpoint([this](const wire::EndpointRef& ep) -> Result<json> {
         SMV_RETURN_IF_ERROR(driver_.Leave(ep.network_id, ep.endpoint_id));
         return Empty();
       })},
      {"/NetworkDriver.ProgramExternalConnectivity", empty_ok},
      {"/NetworkDriver.RevokeExternalConnectivity", empty_ok},
      {"/NetworkDriver.DiscoverNew", empty_ok},
      {"/NetworkDriver.DiscoverDelete", empty_ok},
      {"/NetworkDriver.AllocateNetwork",
       [](const json&) -> Result<json> {
         return json{{"Options", json::object()}};
       }},
      {"/NetworkDriver.FreeNetwork", empty_ok},
  };
}

std::vector<std::pair<std::string, Handler>> PluginApi::IpamRoutes() {
  return {
      {"/IpamDriver.RequestPool",
       [this](const json& r) -> Result<json> {
         Result<ipam::PoolRequest> request = wire::DecodeRequestPool(r);
         if (!request.ok()) return request.status();
         Result<ipam::PoolResult> result = ipam_.RequestPool(*request);
         if (!result.ok()) return result.status();
         return wire::EncodeRequestPool(*result);
       }},
      {"/IpamDriver.ReleasePool",
       [this](const json& r) -> Result<json> {
         Result<std::string> pool = wire::DecodePoolId(r);
         if (!pool.ok()) return pool.status();
         SMV_RETURN_IF_ERROR(ipam_.ReleasePool(*pool));
         return Empty();
       }},
      {"/IpamDriver.RequestAddress", [this](const json& r) { return RequestAddress(r); }},
      {"/IpamDriver.ReleaseAddress",
       [this](const json& r) -> Result<json> {
         Result<wire::ReleaseAddressCall> call = wire::DecodeReleaseAddress(r);
         if (!call.ok()) return call.status();
         SMV_RETURN_IF_ERROR(ipam_.ReleaseAddress(call->pool_id, call->address));
         return Empty();
       }},
  };
}

std::vector<std::pair<std::string, Handler>> PluginApi::CliRoutes() {
  return {
      {"/StaticMacvlan.ListReservations", [this](const json& r) { return ListReservations(r); }},
      {"/StaticMacvlan.Reserve", [this](const json& r) { return Reserve(r); }},
      {"/StaticMacvlan.Release", [this](const json& r) { return Release(r); }},
      {"/StaticMacvlan.ReleaseNode", [this](const json& r) { return ReleaseNode(r); }},
  };
}

std::vector<std::pair<std::string, Handler>> PluginApi::Routes() {
  std::vector<std::pair<std::string, Handler>> all;
  for (auto part : {ActivationRoutes(), DriverRoutes(), IpamRoutes(), CliRoutes()}) {
    for (auto& route : part) all.push_back(std::move(route));
  }
  return all;
}

Result<std::vector<Prefix>> PluginApi::NetworkSubnets(const std::string& network) {
  std::vector<driver::NetworkRecord> matches;
  for (const driver::NetworkRecord& n : driver_.Networks()) {
    if (n.id == network || (network.size() >= kMinIdPrefix && n.id.starts_with(network))) matches.push_back(n);
  }
  if (matches.empty() && engine_ != nullptr) {
    Result<engine::EngineNetwork> named = engine_->InspectNetwork(network, kNetworkLookupTimeout);
    if (named.ok()) {
      if (std::optional<driver::NetworkRecord> n = driver_.FindNetwork(named->id)) matches.push_back(*n);
    } else if (named.status().code() != Code::kNotFound && !IsFullId(network)) {
      // Only dockerd knows network names: without its answer nothing is known about this one.
      return Unavailable(fmt::format(
          "cannot ask dockerd{} which network \"{}\" is: {}; give the network's id instead, or start dockerd",
          engine_address_.empty() ? "" : " at " + engine_address_, network, named.status().message()));
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
  Result<std::string> network = wire::DecodeListReservations(req);
  if (!network.ok()) return network.status();
  std::vector<Prefix> subnets;
  if (!network->empty()) {
    Result<std::vector<Prefix>> found = NetworkSubnets(*network);
    if (!found.ok()) return found.status();
    subnets = *found;
  }
  std::vector<ipam::ReservationView> views = ipam_.ListReservations();
  std::erase_if(views, [&](const ipam::ReservationView& v) {
    return !subnets.empty() &&
           std::none_of(subnets.begin(), subnets.end(), [&](const Prefix& p) { return p.ToString() == v.pool_subnet; });
  });
  return wire::EncodeReservations(views);
}

Result<json> PluginApi::Reserve(const json& req) {
  Result<wire::ReserveCall> call = wire::DecodeReserve(req);
  if (!call.ok()) return call.status();
  const auto& [name, address, network] = *call;
  std::optional<IpAddress> ip = IpAddress::Parse(address);
  if (!ip) return InvalidArgument(fmt::format("invalid address \"{}\": want an address such as 192.0.2.10", address));
  Result<std::vector<Prefix>> subnets = NetworkSubnets(network);
  if (!subnets.ok()) return subnets.status();
  for (const Prefix& subnet : *subnets) {
    if (!subnet.Contains(*ip)) continue;
    std::vector<std::string> pools = ipam_.PoolsOnSubnet(subnet);
    if (pools.size() != 1) {
      return FailedPrecondition(
          fmt::format("network \"{}\" has no single address pool for {}", network, subnet.ToString()));
    }
    SMV_RETURN_IF_ERROR(ipam_.Reserve(pools.front(), name, *ip));
    return json{{"Pool", pools.front()}};
  }
  return InvalidArgument(fmt::format("address {} is outside every subnet of network \"{}\"", address, network));
}

Result<json> PluginApi::Release(const json& req) {
  Result<std::string> target = wire::DecodeRelease(req);
  if (!target.ok()) return target.status();
  Result<int> released = ipam_.Release(*target);
  if (!released.ok()) return released.status();
  if (*released == 0) {
    return NotFound(fmt::format("no reservation for \"{}\" (see static-macvlan reservations ls)", *target));
  }
  return json{{"Released", *released}};
}

Result<json> PluginApi::ReleaseNode(const json& req) {
  Result<std::string> node = wire::DecodeReleaseNode(req);
  if (!node.ok()) return node.status();
  Result<int> freed = ipam_.ReleaseNode(*node);
  if (!freed.ok()) return freed.status();
  return json{{"Released", *freed}};
}

PluginApi::PluginApi(driver::DriverService& driver, ipam::IpamApi& ipam, identity::IdentityService* identity,
                     engine::EngineApi* engine)
    : driver_(driver), ipam_(ipam), identity_(identity), engine_(engine) {
  for (auto& [route, handler] : Routes()) table_.emplace(route, std::move(handler));
}

std::pair<int, std::string> PluginApi::Dispatch(const std::string& path, const std::string& body) {
  auto it = table_.find(path);
  if (it == table_.end()) {
    return {404, ToWire(json{{"Err", fmt::format("unknown plugin endpoint \"{}\"", path)}})};
  }
  const auto started = std::chrono::steady_clock::now();
  // Before parsing: nlohmann::json copies, prints and frees values recursively (json_depth.h).
  const Status shallow = CheckJsonDepth(body);
  const Result<json> request = shallow.ok() ? DecodeBody(body) : Result<json>(shallow);
  Result<json> out = request.ok() ? it->second(*request) : request.status();
  metrics::ObserveApiCall(std::string_view(path).substr(1), CodeName(out.status().code()),
                          std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
  if (out.ok()) {
    spdlog::debug(
        "{} ok took_us={} request={} response={}", path,
        std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - started).count(), body,
        ToWire(*out));
    return {200, ToWire(*out)};
  }
  // A body that is not what the path takes at all (too deep; none where an object is wanted): 400.
  const bool bodiless = body.empty() && out.status().code() == Code::kInvalidArgument;
  const std::string message = bodiless ? fmt::format("request body is empty: {} wants a JSON object body ({})",
                                                     path.substr(1), out.status().message())
                                       : out.status().message();
  spdlog::warn("{} failed: {}", path.substr(1), message);  // the only log line
  return {!shallow.ok() || bodiless ? 400 : kErrorStatus, ToWire(json{{"Err", message}})};
}

std::string PluginApi::RenderMetrics() const {
  // The networks on each subnet, by the short id `docker network ls` shows (ids, not names: the
  // driver is never told a network's name).
  std::map<std::string, std::string> networks_on;
  for (const driver::NetworkRecord& network : driver_.Networks()) {
    for (const std::vector<driver::IpData>* family : {&network.ipv4, &network.ipv6}) {
      for (const driver::IpData& data : *family) {
        std::string& ids = networks_on[data.pool.ToString()];
        if (!ids.empty()) ids += ',';
        ids += ShortId(network.id);
      }
    }
  }
  std::map<std::string, metrics::PoolGauges> pools;
  for (const ipam::PoolUsage& usage : ipam_.PoolUsages()) {
    metrics::PoolGauges& p = pools[usage.pool_id];
    p.pool = usage.pool_id;
    if (auto on = networks_on.find(usage.subnet.ToString()); on != networks_on.end()) p.network = on->second;
    const int host_bits = (usage.subnet.family() == Family::kV4 ? 32 : 128) - usage.subnet.length();
    p.addresses = std::ldexp(1.0, host_bits);
    p.in_use = static_cast<double>(usage.leased);
  }
  for (const ipam::ReservationView& view : ipam_.ListReservations()) {
    auto it = pools.find(view.record.pool_id);
    if (it == pools.end()) continue;  // a removed network's pool kept for its names: no gauges
    if (view.drifted_to) it->second.drifted += 1;
    if (!view.in_use) it->second.reserved_free += 1;
  }
  std::vector<metrics::PoolGauges> gauges;
  for (auto& [id, p] : pools) gauges.push_back(std::move(p));
  return metrics::Render(gauges);
}

void InstallRoutes(httplib::Server& server, PluginApi& api) {
  server.set_payload_max_length(kMaxBodyBytes);
  // Every POST (any path) reads its body here, bounded however it is framed (http_body.h).
  auto handle = [&api](const httplib::Request& req, httplib::Response& res, const httplib::ContentReader& read) {
    Body body = ReadBody(req, read, kMaxBodyBytes);
    if (body.outcome != Body::Outcome::kRead) {
      const bool large = body.outcome == Body::Outcome::kTooLarge;
      const std::string err = ToWire(json{{"Err", large ? TooLargeMessage(kMaxBodyBytes) : body.problem}});
      if (body.close) return AnswerAndClose(res, large ? 413 : 400, err, kPluginContentType);
      res.status = large ? 413 : 400;
      return res.set_content(err, kPluginContentType);
    }
    auto [status, answer] = api.Dispatch(req.path, body.text);
    res.status = status;
    if (body.close) return AnswerAndClose(res, status, answer, kPluginContentType);
    res.set_content(answer, kPluginContentType);
  };
  server.Post(R"(.*)", handle);
  server.Get("/metrics", [&api](const httplib::Request&, httplib::Response& res) {
    res.set_content(api.RenderMetrics(), metrics::kContentType);
  });
  server.Get(R"(/.*)", [](const httplib::Request& req, httplib::Response& res) {
    res.status = 404;
    res.set_content(ToWire(json{{"Err", fmt::format("unknown plugin endpoint \"{}\": dockerd only POSTs", req.path)}}),
                    kPluginContentType);
  });
  server.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty() || res.content_provider_) return;
    const std::string message = res.status == 413
                                    ? TooLargeMessage(kMaxBodyBytes)
                                    : fmt::format("request to \"{}\" failed with HTTP {}", req.path, res.status);
    res.set_content(ToWire(json{{"Err", message}}), kPluginContentType);
  });
}

}  // namespace smv::api
