#include "driver/records.h"

#include "common/record_fields.h"

namespace smv::driver {

// IpData as stored inside a network record: {"pool": CIDR, "gateway": address (optional)}.
// Found by argument-dependent lookup from the generic vector codec.
template <typename F, smv::records::RecordOf<IpData> R>
void RecordSchema(F& f, R& r) {
  f("pool", r.pool, smv::records::kRequired);
  f("gateway", r.gateway);
}

void Encode(nlohmann::json& out, const IpData& data) {
  smv::records::Writer w;
  RecordSchema(w, data);
  out = std::move(w.out());
}

std::string_view Decode(const nlohmann::json& in, IpData& data) {
  if (!in.is_object()) return "an object {pool, gateway}";
  smv::records::Reader r(in);
  RecordSchema(r, data);
  return r.error().empty() ? "" : "an object {pool: CIDR, gateway: address}";
}

template <typename F, smv::records::RecordOf<NetworkRecord> R>
void RecordSchema(F& f, R& r) {
  f("options", r.options);
  f("ipv4", r.ipv4);
  f("ipv6", r.ipv6);
  f("internal", r.internal);
}

template <typename F, smv::records::RecordOf<LinkRecord> R>
void RecordSchema(F& f, R& r) {
  f("created_by_us", r.created_by_us);
  f("promisc_by_us", r.promisc_by_us);
}

template <typename F, smv::records::RecordOf<EndpointRecord> R>
void RecordSchema(F& f, R& r) {
  f("network", r.network_id, smv::records::kRequired);
  f("link", r.link_name);
  f("mac", r.mac);
  f("v4", r.address_v4);
  f("v6", r.address_v6);
  f("sandbox", r.sandbox_key);
  f("name", r.container_name);
  f("since", r.since);
}

namespace records {
namespace {

// The id lives in the key; a decoded record gets it from there.
template <typename Record>
Result<Record> DecodeWithId(std::string_view db, std::string_view key, std::string_view value,
                            std::string Record::*id) {
  Record record;
  SMV_RETURN_IF_ERROR(smv::records::DecodeRecord({db, key}, value, kVersion, record));
  record.*id = std::string(key);
  return record;
}

}  // namespace

std::string EncodeNetwork(const NetworkRecord& network) { return smv::records::EncodeRecord(network, kVersion); }
std::string EncodeLink(const LinkRecord& link) { return smv::records::EncodeRecord(link, kVersion); }
std::string EncodeEndpoint(const EndpointRecord& endpoint) { return smv::records::EncodeRecord(endpoint, kVersion); }

Result<NetworkRecord> DecodeNetwork(std::string_view db, std::string_view key, std::string_view value) {
  return DecodeWithId(db, key, value, &NetworkRecord::id);
}
Result<LinkRecord> DecodeLink(std::string_view db, std::string_view key, std::string_view value) {
  return DecodeWithId(db, key, value, &LinkRecord::name);
}
Result<EndpointRecord> DecodeEndpoint(std::string_view db, std::string_view key, std::string_view value) {
  return DecodeWithId(db, key, value, &EndpointRecord::endpoint_id);
}

}  // namespace records
}  // namespace smv::driver
