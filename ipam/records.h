#pragma once
// The stored form of the IPAM records, store-independent: each record's key and its versioned
// JSON value, with one schema per record (common/record_fields.h). Used by the LMDB store and
// pinned by the golden store test (tests/golden): once a field name ships, it is permanent.
//   pool         <pool id>                  -> {v, subnet, range, v6, options, users,
//                                              node_ranges, aux, aux_set_by (shared books only)}
//   lease        <pool id> '\0' <address>   -> {v, kind, name, mac, since, node (shared books only)}
//   reservation  <pool id> '\0' <name>      -> {v, address, mac, since, gone_since}
//   journaled release <pool id> '\0' <address> -> {v, node, revision}   (this host only: release_journal.h)
//   reserved address  <pool id> '\0' <address> -> {v, name}   (shared books only: etcd_store.h)

#include <string>
#include <string_view>

#include "common/status.h"
#include "ipam/ipam_store.h"
#include "ipam/release_journal.h"

namespace smv::ipam::records {

inline constexpr int kVersion = 1;

std::string PoolKey(const std::string& pool_id);
std::string LeaseKey(const std::string& pool_id, const IpAddress& address);
std::string ReservationKey(const std::string& pool_id, const std::string& name);

// The pool id and address of a lease (or reserved-address) key.
Result<std::pair<std::string, IpAddress>> ParseLeaseKey(std::string_view db, std::string_view key);

std::string EncodePool(const PoolRecord& pool);
std::string EncodeLease(const LeaseRecord& lease);
std::string EncodeReservation(const ReservationRecord& reservation);
std::string EncodeJournaledRelease(const JournaledRelease& release);

// `db` names the database or key prefix in error messages. Never throws; a corrupt value is
// kInternal naming the key and the field, a newer version kFailedPrecondition.
Result<PoolRecord> DecodePool(std::string_view db, std::string_view key, std::string_view value);
Result<LeaseRecord> DecodeLease(std::string_view db, std::string_view key, std::string_view value);
Result<ReservationRecord> DecodeReservation(std::string_view db, std::string_view key, std::string_view value);
Result<JournaledRelease> DecodeJournaledRelease(std::string_view db, std::string_view key, std::string_view value);
// The name that holds a reservation on an address (the key is LeaseKey's).
std::string EncodeReservedAddress(const std::string& name);
Result<std::string> DecodeReservedAddress(std::string_view db, std::string_view key, std::string_view value);

}  // namespace smv::ipam::records
