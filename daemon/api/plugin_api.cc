#include "daemon/api/plugin_api.h"

#include <httplib.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cmath>
#include <map>
#include <set>

#include "common/clock.h"
#include "common/log.h"
#include "common/metrics/metrics.h"
#include "common/shell_word.h"
#include "daemon/api/http_body.h"
#include "daemon/api/json_depth.h"
#include "daemon/pool_metrics.h"
#include "daemon/reconciler.h"

namespace smv::api {
namespace {

using nlohmann::json;

json Empty() { return json::object(); }

// Always 500 for handler errors: an IPAM error with 200 is ignored by dockerd, and 500 + Err is
// read the same way by both interfaces.
constexpr int kErrorStatus = 500;

// Every body we send. Messages quote request values, sometimes cut to a few bytes (ids), which
// can split a UTF-8 sequence; replace such bytes rather than throw (found by fuzzing).
std::string ToWire(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

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

Result<json> PluginApi::CreateNetwork(const json& req) {
  Result<wire::CreateNetworkRequest> request = wire::DecodeCreateNetwork(req);
  if (!request.ok()) return request.status();
  SMV_RETURN_IF_ERROR(creation_.Create(*request));
  return Empty();
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
  if (identity_ != nullptr) identity_->IdentifyRequester(*call);
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
      {"/StaticMacvlan.ListReservations",
       [this](const json& r) -> Result<json> {
         Result<std::string> network = wire::DecodeListReservations(r);
         if (!network.ok()) return network.status();
         Result<std::vector<ipam::ReservationView>> views = reservations_.List(*network);
         if (!views.ok()) return views.status();
         return wire::EncodeReservations(*views);
       }},
      {"/StaticMacvlan.Reserve",
       [this](const json& r) -> Result<json> {
         Result<wire::ReserveCall> call = wire::DecodeReserve(r);
         if (!call.ok()) return call.status();
         Result<std::string> pool = reservations_.Reserve(call->name, call->address, call->network);
         if (!pool.ok()) return pool.status();
         return wire::EncodeReserved(*pool);
       }},
      {"/StaticMacvlan.Release",
       [this](const json& r) -> Result<json> {
         Result<std::string> target = wire::DecodeRelease(r);
         if (!target.ok()) return target.status();
         Result<int> released = reservations_.Release(*target);
         if (!released.ok()) return released.status();
         return wire::EncodeReleased(*released);
       }},
      {"/StaticMacvlan.ReleaseNode",
       [this](const json& r) -> Result<json> {
         Result<std::string> node = wire::DecodeReleaseNode(r);
         if (!node.ok()) return node.status();
         Result<int> freed = reservations_.ReleaseNode(*node);
         if (!freed.ok()) return freed.status();
         return wire::EncodeReleased(*freed);
       }},
  };
}

std::vector<std::pair<std::string, Handler>> PluginApi::Routes() {
  std::vector<std::pair<std::string, Handler>> all;
  for (auto part : {ActivationRoutes(), DriverRoutes(), IpamRoutes(), CliRoutes()}) {
    for (auto& route : part) all.push_back(std::move(route));
  }
  return all;
}

PluginApi::PluginApi(driver::DriverService& driver, ipam::IpamApi& ipam, identity::IdentityService* identity,
                     engine::EngineApi* engine)
    : driver_(driver), ipam_(ipam), identity_(identity), creation_(driver, ipam), reservations_(driver, ipam, engine) {
  for (auto& [route, handler] : Routes()) table_.emplace(route, std::move(handler));
}

std::pair<int, std::string> PluginApi::Dispatch(const std::string& path, const std::string& body) {
  auto it = table_.find(path);
  if (it == table_.end()) {
    return {404, ToWire(wire::EncodeError(fmt::format("unknown plugin endpoint \"{}\"", path)))};
  }
  const auto started = SteadyClock::now();
  // Before parsing: nlohmann::json copies, prints and frees values recursively (json_depth.h).
  const Status shallow = CheckJsonDepth(body);
  const Result<json> request = shallow.ok() ? DecodeBody(body) : Result<json>(shallow);
  Result<json> out = request.ok() ? it->second(*request) : request.status();
  const double took = SecondsSince(started);
  metrics::ObserveApiCall(std::string_view(path).substr(1), CodeName(out.status().code()), took);
  if (out.ok()) {
    spdlog::debug("{} ok took_us={} request={} response={}", path, static_cast<int64_t>(took * 1e6), body,
                  ToWire(*out));
    return {200, ToWire(*out)};
  }
  // A body that is not what the path takes at all (too deep; none where an object is wanted): 400.
  const bool bodiless = body.empty() && out.status().code() == Code::kInvalidArgument;
  const std::string message = bodiless ? fmt::format("request body is empty: {} wants a JSON object body ({})",
                                                     path.substr(1), out.status().message())
                                       : out.status().message();
  spdlog::warn("{} failed: {}", path.substr(1), message);  // the only log line
  return {!shallow.ok() || bodiless ? 400 : kErrorStatus, ToWire(wire::EncodeError(message))};
}

std::string PluginApi::RenderMetrics() const { return metrics::Render(daemon::PoolGaugesNow(driver_, ipam_)); }

void InstallRoutes(httplib::Server& server, PluginApi& api) {
  server.set_payload_max_length(kMaxBodyBytes);
  // Every POST (any path) reads its body here, bounded however it is framed (http_body.h).
  auto handle = [&api](const httplib::Request& req, httplib::Response& res, const httplib::ContentReader& read) {
    Body body = ReadBody(req, read, kMaxBodyBytes);
    if (body.outcome != Body::Outcome::kRead) {
      const bool large = body.outcome == Body::Outcome::kTooLarge;
      const std::string err = ToWire(wire::EncodeError(large ? TooLargeMessage(kMaxBodyBytes) : body.problem));
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
    res.set_content(
        ToWire(wire::EncodeError(fmt::format("unknown plugin endpoint \"{}\": dockerd only POSTs", req.path))),
        kPluginContentType);
  });
  server.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty() || res.content_provider_) return;
    const std::string message = res.status == 413
                                    ? TooLargeMessage(kMaxBodyBytes)
                                    : fmt::format("request to \"{}\" failed with HTTP {}", req.path, res.status);
    res.set_content(ToWire(wire::EncodeError(message)), kPluginContentType);
  });
}

}  // namespace smv::api
