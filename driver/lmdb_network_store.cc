#include "driver/lmdb_network_store.h"

#include <nlohmann/json.hpp>

namespace smv::driver {
namespace {

using nlohmann::json;

json IpDataToJson(const std::vector<IpData>& data) {
  json out = json::array();
  for (const IpData& d : data) {
    json j = {{"pool", d.pool.ToString()}};
    if (d.gateway) j["gateway"] = d.gateway->ToString();
    out.push_back(j);
  }
  return out;
}

Result<std::vector<IpData>> IpDataFromJson(const json& j) {
  std::vector<IpData> out;
  if (!j.is_array()) return out;
  for (const json& item : j) {
    std::optional<Prefix> pool = Prefix::Parse(item.value("pool", ""));
    if (!pool) return Internal("corrupt network record: bad pool");
    IpData d{*pool, std::nullopt};
    if (item.contains("gateway")) d.gateway = IpAddress::Parse(item.value("gateway", ""));
    out.push_back(d);
  }
  return out;
}

Result<json> ParseValue(std::string_view db, std::string_view key, std::string_view value) {
  json j = json::parse(value, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    return Internal(fmt::format("corrupt record in {} (key \"{}\"): not JSON", db, key));
  }
  if (j.value("v", 0) > LmdbNetworkStore::kRecordVersion) {
    return FailedPrecondition(fmt::format(
        "record in {} has version {}, newer than this static-macvlan understands ({})", db,
        j.value("v", 0), LmdbNetworkStore::kRecordVersion));
  }
  return j;
}

}  // namespace

const std::vector<std::string>& LmdbNetworkStore::DatabaseNames() {
  static const std::vector<std::string> names = {"networks", "links", "endpoints"};
  return names;
}

Result<std::unique_ptr<LmdbNetworkStore>> LmdbNetworkStore::Open(lmdb::Env& env) {
  Result<lmdb::Dbi> networks = env.Database("networks");
  Result<lmdb::Dbi> links = env.Database("links");
  Result<lmdb::Dbi> endpoints = env.Database("endpoints");
  if (!networks.ok()) return networks.status();
  if (!links.ok()) return links.status();
  if (!endpoints.ok()) return endpoints.status();
  return std::unique_ptr<LmdbNetworkStore>(new LmdbNetworkStore(env, *networks, *links, *endpoints));
}

Result<DriverSnapshot> LmdbNetworkStore::Load() {
  Result<lmdb::Txn> txn = env_.BeginRead();
  if (!txn.ok()) return txn.status();
  DriverSnapshot snapshot;
  SMV_RETURN_IF_ERROR(txn->ForEach(networks_, "", [&](std::string_view key, std::string_view value) {
    Result<json> j = ParseValue("networks", key, value);
    if (!j.ok()) return j.status();
    NetworkRecord n;
    n.id = std::string(key);
    n.options = j->value("options", std::map<std::string, std::string>());
    Result<std::vector<IpData>> v4 = IpDataFromJson(j->value("ipv4", json::array()));
    Result<std::vector<IpData>> v6 = IpDataFromJson(j->value("ipv6", json::array()));
    if (!v4.ok()) return v4.status();
    if (!v6.ok()) return v6.status();
    n.ipv4 = *v4;
    n.ipv6 = *v6;
    n.internal = j->value("internal", false);
    snapshot.networks.push_back(std::move(n));
    return OkStatus();
  }));
  SMV_RETURN_IF_ERROR(txn->ForEach(links_, "", [&](std::string_view key, std::string_view value) {
    Result<json> j = ParseValue("links", key, value);
    if (!j.ok()) return j.status();
    snapshot.links.push_back(LinkRecord{std::string(key), j->value("created_by_us", false),
                                        j->value("promisc_by_us", false)});
    return OkStatus();
  }));
  SMV_RETURN_IF_ERROR(txn->ForEach(endpoints_, "", [&](std::string_view key, std::string_view value) {
    Result<json> j = ParseValue("endpoints", key, value);
    if (!j.ok()) return j.status();
    EndpointRecord e;
    e.endpoint_id = std::string(key);
    e.network_id = j->value("network", "");
    e.link_name = j->value("link", "");
    e.mac = j->value("mac", "");
    e.address_v4 = j->value("v4", "");
    e.address_v6 = j->value("v6", "");
    e.sandbox_key = j->value("sandbox", "");
    e.container_name = j->value("name", "");
    e.since = j->value("since", int64_t{0});
    snapshot.endpoints.push_back(std::move(e));
    return OkStatus();
  }));
  return snapshot;
}

Status LmdbNetworkStore::Apply(const DriverBatch& batch) {
  Result<lmdb::Txn> txn = env_.BeginWrite();
  if (!txn.ok()) return txn.status();
  for (const NetworkRecord& n : batch.put_networks) {
    json j = {{"v", kRecordVersion}, {"options", n.options}, {"ipv4", IpDataToJson(n.ipv4)},
              {"ipv6", IpDataToJson(n.ipv6)}, {"internal", n.internal}};
    SMV_RETURN_IF_ERROR(txn->Put(networks_, n.id, j.dump()));
  }
  for (const std::string& id : batch.delete_networks) {
    if (Result<bool> r = txn->Delete(networks_, id); !r.ok()) return r.status();
  }
  for (const LinkRecord& l : batch.put_links) {
    json j = {{"v", kRecordVersion}, {"created_by_us", l.created_by_us},
              {"promisc_by_us", l.promisc_by_us}};
    SMV_RETURN_IF_ERROR(txn->Put(links_, l.name, j.dump()));
  }
  for (const std::string& name : batch.delete_links) {
    if (Result<bool> r = txn->Delete(links_, name); !r.ok()) return r.status();
  }
  for (const EndpointRecord& e : batch.put_endpoints) {
    json j = {{"v", kRecordVersion}, {"network", e.network_id}, {"link", e.link_name},
              {"mac", e.mac}, {"v4", e.address_v4}, {"v6", e.address_v6},
              {"sandbox", e.sandbox_key}, {"name", e.container_name}, {"since", e.since}};
    SMV_RETURN_IF_ERROR(txn->Put(endpoints_, e.endpoint_id, j.dump()));
  }
  for (const std::string& id : batch.delete_endpoints) {
    if (Result<bool> r = txn->Delete(endpoints_, id); !r.ok()) return r.status();
  }
  return txn->Commit().Annotate("save network state");
}

}  // namespace smv::driver
