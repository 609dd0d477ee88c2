#include "ipam/lmdb_store.h"

#include <nlohmann/json.hpp>

namespace smv::ipam {
namespace {

using nlohmann::json;

std::string Key(std::string_view pool_id, std::string_view rest) {
  std::string key(pool_id);
  key.push_back('\0');
  key.append(rest);
  return key;
}

std::pair<std::string, std::string> SplitKey(std::string_view key) {
  const size_t nul = key.find('\0');
  if (nul == std::string_view::npos) return {std::string(key), ""};
  return {std::string(key.substr(0, nul)), std::string(key.substr(nul + 1))};
}

Result<json> ParseValue(std::string_view db, std::string_view key, std::string_view value) {
  json j = json::parse(value, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    return Internal(fmt::format("corrupt record in {} (key \"{}\"): not JSON", db, key));
  }
  if (j.value("v", 0) > LmdbIpamStore::kRecordVersion) {
    return FailedPrecondition(fmt::format(
        "record in {} has version {}, newer than this static-macvlan understands ({})", db,
        j.value("v", 0), LmdbIpamStore::kRecordVersion));
  }
  return j;
}

Result<IpAddress> ParseStoredAddress(std::string_view db, std::string_view text) {
  std::optional<IpAddress> ip = IpAddress::Parse(text);
  if (!ip) return Internal(fmt::format("corrupt address \"{}\" in {}", text, db));
  return *ip;
}

}  // namespace

const std::vector<std::string>& LmdbIpamStore::DatabaseNames() {
  static const std::vector<std::string> names = {"ipam_pools", "ipam_leases", "ipam_reservations"};
  return names;
}

Result<std::unique_ptr<LmdbIpamStore>> LmdbIpamStore::Open(lmdb::Env& env) {
  Result<lmdb::Dbi> pools = env.Database("ipam_pools");
  Result<lmdb::Dbi> leases = env.Database("ipam_leases");
  Result<lmdb::Dbi> reservations = env.Database("ipam_reservations");
  if (!pools.ok()) return pools.status();
  if (!leases.ok()) return leases.status();
  if (!reservations.ok()) return reservations.status();
  return std::unique_ptr<LmdbIpamStore>(new LmdbIpamStore(env, *pools, *leases, *reservations));
}

Result<IpamSnapshot> LmdbIpamStore::Load() {
  Result<lmdb::Txn> txn = env_.BeginRead();
  if (!txn.ok()) return txn.status();
  IpamSnapshot snapshot;
  SMV_RETURN_IF_ERROR(txn->ForEach(pools_, "", [&](std::string_view key, std::string_view value) {
    Result<json> j = ParseValue("ipam_pools", key, value);
    if (!j.ok()) return j.status();
    PoolRequest request;
    request.pool = j->value("subnet", "");
    request.sub_pool = j->value("range", "");
    request.v6 = j->value("v6", false);
    request.options = j->value("options", std::map<std::string, std::string>());
    Result<PoolConfig> config = ParsePoolRequest(request);
    if (!config.ok()) return config.status().Annotate(fmt::format("stored pool \"{}\"", key));
    snapshot.pools.push_back(PoolRecord{*config, j->value("users", 1)});
    return OkStatus();
  }));
  SMV_RETURN_IF_ERROR(txn->ForEach(leases_, "", [&](std::string_view key, std::string_view value) {
    Result<json> j = ParseValue("ipam_leases", key, value);
    if (!j.ok()) return j.status();
    auto [pool_id, address_text] = SplitKey(key);
    Result<IpAddress> address = ParseStoredAddress("ipam_leases", address_text);
    if (!address.ok()) return address.status();
    LeaseRecord record;
    record.pool_id = pool_id;
    record.address = *address;
    record.lease.kind = LeaseKindFromName(j->value("kind", "endpoint")).value_or(LeaseKind::kEndpoint);
    record.lease.name = j->value("name", "");
    record.lease.mac = j->value("mac", "");
    record.since = j->value("since", int64_t{0});
    snapshot.leases.push_back(std::move(record));
    return OkStatus();
  }));
  SMV_RETURN_IF_ERROR(
      txn->ForEach(reservations_, "", [&](std::string_view key, std::string_view value) {
        Result<json> j = ParseValue("ipam_reservations", key, value);
        if (!j.ok()) return j.status();
        auto [pool_id, name] = SplitKey(key);
        Result<IpAddress> address = ParseStoredAddress("ipam_reservations", j->value("address", ""));
        if (!address.ok()) return address.status();
        snapshot.reservations.push_back(ReservationRecord{
            pool_id, name, *address, j->value("mac", ""), j->value("since", int64_t{0}),
            j->value("gone_since", int64_t{0})});
        return OkStatus();
      }));
  return snapshot;
}

Status LmdbIpamStore::ApplyAll(std::span<const IpamBatch> batches) {
  Result<lmdb::Txn> txn = env_.BeginWrite();
  if (!txn.ok()) return txn.status();
  for (const IpamBatch& batch : batches) SMV_RETURN_IF_ERROR(Write(*txn, batch));
  return txn->Commit().Annotate("save address state");
}

Status LmdbIpamStore::Write(lmdb::Txn& txn, const IpamBatch& batch) {
  for (const PoolRecord& pool : batch.put_pools) {
    json j = {{"v", kRecordVersion},
              {"subnet", pool.config.subnet.ToString()},
              {"v6", pool.config.subnet.family() == Family::kV6},
              {"options", pool.config.options},
              {"users", pool.users}};
    if (pool.config.range) j["range"] = pool.config.range->ToString();
    SMV_RETURN_IF_ERROR(txn.Put(pools_, pool.config.id, j.dump()));
  }
  for (const std::string& id : batch.delete_pools) {
    if (Result<bool> r = txn.Delete(pools_, id); !r.ok()) return r.status();
  }
  for (const LeaseRecord& lease : batch.put_leases) {
    json j = {{"v", kRecordVersion}, {"kind", LeaseKindName(lease.lease.kind)},
              {"name", lease.lease.name}, {"mac", lease.lease.mac}, {"since", lease.since}};
    SMV_RETURN_IF_ERROR(txn.Put(leases_, Key(lease.pool_id, lease.address.ToString()), j.dump()));
  }
  for (const auto& [pool_id, address] : batch.delete_leases) {
    if (Result<bool> r = txn.Delete(leases_, Key(pool_id, address.ToString())); !r.ok()) {
      return r.status();
    }
  }
  for (const ReservationRecord& r : batch.put_reservations) {
    json j = {{"v", kRecordVersion}, {"address", r.address.ToString()}, {"mac", r.mac},
              {"since", r.since}, {"gone_since", r.gone_since}};
    SMV_RETURN_IF_ERROR(txn.Put(reservations_, Key(r.pool_id, r.name), j.dump()));
  }
  for (const auto& [pool_id, name] : batch.delete_reservations) {
    if (Result<bool> r = txn.Delete(reservations_, Key(pool_id, name)); !r.ok()) return r.status();
  }
  return OkStatus();
}

}  // namespace smv::ipam
