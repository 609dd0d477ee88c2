#pragma once
// What the IPAM service needs from storage, and nothing more: load everything at start-up,
// and apply batches of changes atomically and durably. A book shared by hosts answers more
// (shared_book.h). Implemented on LMDB (lmdb_store.h), etcd (etcd_store.h) and in memory for
// tests (tests/support/memory_ipam_store.h).

#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/ip.h"
#include "common/status.h"
#include "ipam/allocator.h"
#include "ipam/pool.h"

namespace smv::ipam {

struct PoolRecord {
  PoolConfig config;
  int users = 1;  // RequestPool calls not yet released (dockerd may ask for one subnet twice)
  // In a book shared by hosts a subnet is one pool, config.range is unset, and each host that
  // gave an --ip-range has it here (node -> CIDR): its own part of the subnet for dynamic addresses.
  std::map<std::string, std::string> node_ranges;
  // Shared book: the --aux-address set (name -> address) every host's network on this subnet
  // must give, recorded by the first network created on it (aux_set_by: that node; "" = none yet).
  std::map<std::string, std::string> aux;
  std::string aux_set_by;
};

// The holder of a lease whose record does not decode: the address stays taken, but nobody is
// known to hold it (so nothing acts as if another host did).
inline constexpr std::string_view kUndecodableHolder = "(an undecodable record)";

struct LeaseRecord {
  std::string pool_id;
  IpAddress address;
  Lease lease;
  int64_t since = 0;  // unix seconds
};

// A container name's address in a pool. It outlives leases (a stop releases the address) and
// even the pool (a network removed and created again finds it), until a user releases it or
// its retention time after the container was destroyed has passed.
struct ReservationRecord {
  std::string pool_id;
  std::string name;
  IpAddress address;
  std::string mac;
  int64_t since = 0;
  int64_t gone_since = 0;  // when the container was seen destroyed; 0 = not gone
  friend bool operator==(const ReservationRecord&, const ReservationRecord&) = default;
};

struct IpamSnapshot {
  std::vector<PoolRecord> pools;
  std::vector<LeaseRecord> leases;
  std::vector<ReservationRecord> reservations;
};

// Records a decision read, by what identifies them. `reserved_addresses`: "which name holds a
// reservation on this address" (a shared book keeps that answer under its own key).
struct BookReads {
  std::vector<std::string> pools;
  std::vector<std::pair<std::string, IpAddress>> leases;              // pool id, address
  std::vector<std::pair<std::string, std::string>> reservations;      // pool id, name
  std::vector<std::pair<std::string, IpAddress>> reserved_addresses;  // pool id, address
  bool empty() const { return pools.empty() && leases.empty() && reservations.empty() && reserved_addresses.empty(); }
};

// One atomic change. Deletes of absent keys are not errors.
struct IpamBatch {
  std::vector<PoolRecord> put_pools;
  std::vector<std::string> delete_pools;
  std::vector<LeaseRecord> put_leases;
  std::vector<std::pair<std::string, IpAddress>> delete_leases;  // pool id, address
  std::vector<ReservationRecord> put_reservations;
  std::vector<std::pair<std::string, std::string>> delete_reservations;  // pool id, name
  // Shared books: what the decision behind this batch read and does not write. The commit holds
  // only while each is as this node saw it (ipam/fleet_rules.h says which decision reads what).
  BookReads reads;
  // Operations this batch may take in a shared store's transaction, writes and compares (an upper
  // bound: batches of one commit may share keys). A reservation also writes who reserves its new
  // address and deletes its old one's; each read is one compare.
  size_t writes() const {
    return put_pools.size() + delete_pools.size() + put_leases.size() + delete_leases.size() +
           3 * put_reservations.size() + 2 * delete_reservations.size() + reads.pools.size() + reads.leases.size() +
           reads.reservations.size() + reads.reserved_addresses.size();
  }
  bool empty() const {
    return put_pools.empty() && delete_pools.empty() && put_leases.empty() && delete_leases.empty() &&
           put_reservations.empty() && delete_reservations.empty();
  }
};

class SharedBook;  // shared_book.h

// Receives every stored record at start-up: all pools first, then leases, then reservations.
class IpamLoadSink {
 public:
  virtual ~IpamLoadSink() = default;
  virtual void OnPool(PoolRecord pool) = 0;
  virtual void OnLease(LeaseRecord lease) = 0;
  virtual void OnReservation(ReservationRecord reservation) = 0;
};

class IpamStore {
 public:
  virtual ~IpamStore() = default;
  virtual Result<IpamSnapshot> Load() = 0;
  // The same records, streamed: a large state is never held twice (snapshot and indexes) at
  // start-up. The default feeds Load()'s snapshot.
  virtual Status LoadInto(IpamLoadSink& sink);
  // The batches in order, in one transaction: all or nothing, and durable when it returns OK.
  virtual Status ApplyAll(std::span<const IpamBatch> batches) = 0;
  Status Apply(const IpamBatch& batch) { return ApplyAll({&batch, 1}); }
  // This store as a book other hosts write to as well (etcd), or nullptr: one writer, whose
  // memory is the book. Asked once, when the service is made.
  virtual SharedBook* as_shared_book() { return nullptr; }
  // Most writes one ApplyAll may carry (etcd refuses larger transactions): group commit splits
  // at this size. A single batch is never split.
  virtual size_t max_writes_per_commit() const { return SIZE_MAX; }

 protected:
  // Load() for stores that implement LoadInto: collects what it streams.
  Result<IpamSnapshot> CollectLoad();
};

}  // namespace smv::ipam
