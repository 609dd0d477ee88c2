#include "ipam/records.h"

#include "common/record_fields.h"

namespace smv::ipam::records {
namespace {

using smv::records::kRequired;
using smv::records::Location;
using smv::records::RecordOf;

// The stored values. Fields in the key (pool id, address, name) are not repeated here.
struct StoredPool {
  std::string subnet;
  std::optional<std::string> range;  // absent without --ip-range
  bool v6 = false;
  std::map<std::string, std::string> options;
  int users = 1;
  std::optional<std::map<std::string, std::string>> node_ranges;  // only in a book shared by hosts
  std::optional<std::map<std::string, std::string>> aux;          // only in a book shared by hosts
  std::optional<std::string> aux_set_by;                          // only in a book shared by hosts
};

struct StoredLease {
  std::string kind = "endpoint";
  std::string name;
  std::string mac;
  int64_t since = 0;
  std::optional<std::string> node;  // only in a book shared by hosts
};

struct StoredReservation {
  IpAddress address;
  std::string mac;
  int64_t since = 0;
  int64_t gone_since = 0;
};

struct StoredJournaledRelease {
  std::string node;
  std::optional<int64_t> revision;  // absent: unknown (entries written before it was kept)
};

// Shared books only: which name holds a reservation on an address (etcd_store.h).
struct StoredReservedAddress {
  std::string name;
};

template <typename F, RecordOf<StoredPool> R>
void RecordSchema(F& f, R& r) {
  f("subnet", r.subnet, kRequired);
  f("range", r.range);
  f("v6", r.v6);
  f("options", r.options);
  f("users", r.users);
  f("node_ranges", r.node_ranges);
  f("aux", r.aux);
  f("aux_set_by", r.aux_set_by);
}

template <typename F, RecordOf<StoredLease> R>
void RecordSchema(F& f, R& r) {
  f("kind", r.kind);
  f("name", r.name);
  f("mac", r.mac);
  f("since", r.since);
  f("node", r.node);
}

template <typename F, RecordOf<StoredReservation> R>
void RecordSchema(F& f, R& r) {
  f("address", r.address, kRequired);
  f("mac", r.mac);
  f("since", r.since);
  f("gone_since", r.gone_since);
}

template <typename F, RecordOf<StoredJournaledRelease> R>
void RecordSchema(F& f, R& r) {
  f("node", r.node, kRequired);
  f("revision", r.revision);
}

template <typename F, RecordOf<StoredReservedAddress> R>
void RecordSchema(F& f, R& r) {
  f("name", r.name, kRequired);
}

std::string Join(std::string_view pool_id, std::string_view rest) {
  std::string key(pool_id);
  key.push_back('\0');
  key.append(rest);
  return key;
}

// "<pool id>\0<rest>"; kInternal when the separator is missing.
Result<std::pair<std::string, std::string>> Split(const Location& where, std::string_view key) {
  const size_t nul = key.find('\0');
  if (nul == std::string_view::npos) {
    return Internal(fmt::format("corrupt record {}: key has no pool id separator", smv::records::Describe(where)));
  }
  return std::pair{std::string(key.substr(0, nul)), std::string(key.substr(nul + 1))};
}

}  // namespace

std::string PoolKey(const std::string& pool_id) { return pool_id; }
std::string LeaseKey(const std::string& pool_id, const IpAddress& address) { return Join(pool_id, address.ToString()); }
std::string ReservationKey(const std::string& pool_id, const std::string& name) { return Join(pool_id, name); }

std::string EncodePool(const PoolRecord& pool) {
  StoredPool stored{.subnet = pool.config.subnet.ToString(),
                    .range = std::nullopt,
                    .v6 = pool.config.subnet.family() == Family::kV6,
                    .options = pool.config.options,
                    .users = pool.users,
                    .node_ranges = std::nullopt,
                    .aux = std::nullopt,
                    .aux_set_by = std::nullopt};
  if (!pool.node_ranges.empty()) stored.node_ranges = pool.node_ranges;
  if (!pool.aux_set_by.empty()) {
    stored.aux = pool.aux;
    stored.aux_set_by = pool.aux_set_by;
  }
  if (pool.config.range) stored.range = pool.config.range->ToString();
  return smv::records::EncodeRecord(stored, kVersion);
}

std::string EncodeLease(const LeaseRecord& lease) {
  StoredLease stored{.kind = std::string(LeaseKindName(lease.lease.kind)),
                     .name = lease.lease.name,
                     .mac = lease.lease.mac,
                     .since = lease.since,
                     .node = std::nullopt};
  if (!lease.lease.node.empty()) stored.node = lease.lease.node;
  return smv::records::EncodeRecord(stored, kVersion);
}

std::string EncodeReservation(const ReservationRecord& r) {
  const StoredReservation stored{.address = r.address, .mac = r.mac, .since = r.since, .gone_since = r.gone_since};
  return smv::records::EncodeRecord(stored, kVersion);
}

std::string EncodeJournaledRelease(const JournaledRelease& release) {
  StoredJournaledRelease stored{.node = release.node, .revision = std::nullopt};
  if (release.revision != 0) stored.revision = release.revision;
  return smv::records::EncodeRecord(stored, kVersion);
}

Result<PoolRecord> DecodePool(std::string_view db, std::string_view key, std::string_view value) {
  const Location where{db, key};
  StoredPool stored;
  SMV_RETURN_IF_ERROR(smv::records::DecodeRecord(where, value, kVersion, stored));
  Result<PoolConfig> config = ParsePoolRequest(PoolRequest{
      .pool = stored.subnet, .sub_pool = stored.range.value_or(""), .options = stored.options, .v6 = stored.v6});
  if (!config.ok()) return config.status().Annotate(fmt::format("stored pool {}", smv::records::Describe(where)));
  PoolRecord pool{.config = *config,
                  .users = stored.users,
                  .node_ranges = stored.node_ranges.value_or(std::map<std::string, std::string>{}),
                  .aux = stored.aux.value_or(std::map<std::string, std::string>{}),
                  .aux_set_by = stored.aux_set_by.value_or("")};
  for (const auto& [node, range] : pool.node_ranges) {
    const std::optional<Prefix> parsed = Prefix::Parse(range);
    if (!parsed || !config->subnet.Contains(*parsed)) {
      return Internal(fmt::format("corrupt record {}: node_ranges[{}] \"{}\" is not a range inside {}",
                                  smv::records::Describe(where), node, range, stored.subnet));
    }
  }
  return pool;
}

Result<std::pair<std::string, IpAddress>> ParseLeaseKey(std::string_view db, std::string_view key) {
  const Location where{db, key};
  Result<std::pair<std::string, std::string>> parts = Split(where, key);
  if (!parts.ok()) return parts.status();
  std::optional<IpAddress> address = IpAddress::Parse(parts->second);
  if (!address) return Internal(fmt::format("corrupt record {}: key holds no address", smv::records::Describe(where)));
  return std::pair{std::move(parts->first), *address};
}

Result<LeaseRecord> DecodeLease(std::string_view db, std::string_view key, std::string_view value) {
  const Location where{db, key};
  Result<std::pair<std::string, IpAddress>> parts = ParseLeaseKey(db, key);
  if (!parts.ok()) return parts.status();
  const std::optional<IpAddress> address = parts->second;
  StoredLease stored;
  SMV_RETURN_IF_ERROR(smv::records::DecodeRecord(where, value, kVersion, stored));
  std::optional<LeaseKind> kind = LeaseKindFromName(stored.kind);
  if (!kind)
    return Internal(
        fmt::format("corrupt record {}: unknown lease kind \"{}\"", smv::records::Describe(where), stored.kind));
  return LeaseRecord{
      .pool_id = parts->first,
      .address = *address,
      .lease = Lease{.kind = *kind, .name = stored.name, .mac = stored.mac, .node = stored.node.value_or("")},
      .since = stored.since};
}

Result<ReservationRecord> DecodeReservation(std::string_view db, std::string_view key, std::string_view value) {
  const Location where{db, key};
  Result<std::pair<std::string, std::string>> parts = Split(where, key);
  if (!parts.ok()) return parts.status();
  StoredReservation stored;
  SMV_RETURN_IF_ERROR(smv::records::DecodeRecord(where, value, kVersion, stored));
  return ReservationRecord{.pool_id = parts->first,
                           .name = parts->second,
                           .address = stored.address,
                           .mac = stored.mac,
                           .since = stored.since,
                           .gone_since = stored.gone_since};
}

Result<JournaledRelease> DecodeJournaledRelease(std::string_view db, std::string_view key, std::string_view value) {
  const Location where{db, key};
  Result<std::pair<std::string, std::string>> parts = Split(where, key);
  if (!parts.ok()) return parts.status();
  std::optional<IpAddress> address = IpAddress::Parse(parts->second);
  if (!address) return Internal(fmt::format("corrupt record {}: key holds no address", smv::records::Describe(where)));
  StoredJournaledRelease stored;
  SMV_RETURN_IF_ERROR(smv::records::DecodeRecord(where, value, kVersion, stored));
  return JournaledRelease{
      .pool_id = parts->first, .address = *address, .node = stored.node, .revision = stored.revision.value_or(0)};
}

std::string EncodeReservedAddress(const std::string& name) {
  return smv::records::EncodeRecord(StoredReservedAddress{.name = name}, kVersion);
}

Result<std::string> DecodeReservedAddress(std::string_view db, std::string_view key, std::string_view value) {
  StoredReservedAddress stored;
  SMV_RETURN_IF_ERROR(smv::records::DecodeRecord(Location{db, key}, value, kVersion, stored));
  return stored.name;
}

}  // namespace smv::ipam::records

namespace smv::ipam {

Result<IpamSnapshot> IpamStore::CollectLoad() {
  struct Collect : IpamLoadSink {
    IpamSnapshot snapshot;
    void OnPool(PoolRecord p) override { snapshot.pools.push_back(std::move(p)); }
    void OnLease(LeaseRecord l) override { snapshot.leases.push_back(std::move(l)); }
    void OnReservation(ReservationRecord r) override { snapshot.reservations.push_back(std::move(r)); }
  } collect;
  SMV_RETURN_IF_ERROR(LoadInto(collect));
  return std::move(collect.snapshot);
}

Status IpamStore::LoadInto(IpamLoadSink& sink) {
  Result<IpamSnapshot> snapshot = Load();
  if (!snapshot.ok()) return snapshot.status();
  for (PoolRecord& p : snapshot->pools) sink.OnPool(std::move(p));
  for (LeaseRecord& l : snapshot->leases) sink.OnLease(std::move(l));
  for (ReservationRecord& r : snapshot->reservations) sink.OnReservation(std::move(r));
  return OkStatus();
}

}  // namespace smv::ipam
