#pragma once
// What a book shared by hosts (etcd_store.h) answers beyond load and apply: this host's name in
// it, reads of what other nodes wrote since the last load, the revisions a journaled release and
// a fence need, and whether a commit could hold at all. Only a shared store implements it; the
// service gets it once, at construction (IpamStore::as_shared_book), and a local book has none.

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/ip.h"
#include "common/status.h"
#include "ipam/ipam_store.h"

namespace smv::ipam {

// What a shared store holds for one name of a pool right now.
struct NameRecords {
  std::optional<ReservationRecord> reservation;
  std::optional<LeaseRecord> lease;  // on the reserved address
  // The store's bookkeeping of the read, taken in by AdoptRead only: each key read and its mod
  // revision (0: absent), and which address key the reservation holds and who that key names.
  std::vector<std::pair<std::string, int64_t>> revisions;
  std::optional<std::pair<std::string, std::string>> reserved_at;  // reservation key -> address key
  std::optional<std::string> holder;                               // the name the address key holds
};

class SharedBook {
 public:
  virtual ~SharedBook() = default;
  // This host's name in the book: leases it takes carry it.
  virtual std::string node() const = 0;
  // Reads `name`'s reservation in `pool_id` and the lease on its address, for a decision that no
  // commit would compare (another node may have written them since the last load).
  virtual Result<NameRecords> ReadName(const std::string& pool_id, const std::string& name) = 0;
  // From now on commits compare the keys of `read` at the revisions it saw. Called only when
  // memory takes `read` in (under the store mirror's mutex, no commit pending): a read that moved the
  // compares on by itself would let a decision made on older memory pass them.
  virtual void AdoptRead(const NameRecords& read) = 0;
  // Whether any of `names` holds a reservation in `pool_id` as the store holds it now: one look,
  // which decides nothing a commit would compare (it tells whether a guess needs an inspect).
  virtual Result<bool> AnyReserved(const std::string& pool_id, const std::vector<std::string>& names) = 0;
  // The pool record as the store holds it now (nullopt: none), for a look that decides nothing a
  // commit would compare.
  virtual Result<std::optional<PoolRecord>> ReadPool(const std::string& pool_id) = 0;
  // The revision of the lease on `address` as this node last saw or wrote it (0: none known). A
  // journaled release carries it, so that its replay frees that lease and no later one.
  virtual int64_t LeaseRevision(const std::string& pool_id, const IpAddress& address) = 0;
  // Makes every commit `node` (another host) decided on its view so far fail, so that it reloads
  // before it decides again (`reservations release --node`).
  virtual Status FenceNode(const std::string& node) = 0;
  // Whether another process wrote this node's commit key since this node last did (FenceNode):
  // this node's view is then older than what it holds.
  virtual Result<bool> CommitKeyMoved() = 0;
  // Whether a commit of `batch` (its reads completed) can hold; kFailedPrecondition when it would
  // write or compare a record the last load skipped because it does not decode.
  virtual Status CheckDecodable(const IpamBatch& batch) const = 0;
};

}  // namespace smv::ipam
