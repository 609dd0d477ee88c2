#pragma once
// Releases a shared address book could not take when dockerd sent them (etcd unreachable or
// without quorum). dockerd never sees a release fail: the release is kept on this host and
// replayed when the book answers again. Replay is harmless: it frees an address only while this
// node still holds that very lease (same revision), so replaying twice, after another node was
// given the address, or after this node took it again, changes nothing.
// Implemented on LMDB (lmdb_store.h) and in memory for tests.

#include <span>
#include <string>
#include <vector>

#include "common/ip.h"
#include "common/status.h"

namespace smv::ipam {

struct JournaledRelease {
  std::string pool_id;
  IpAddress address;
  std::string node;  // the node that held the lease and released it
  // The released lease's revision in the shared book (SharedBook::LeaseRevision); 0: unknown (a
  // commit whose outcome was unknown, or an entry of an earlier version): any lease `node` holds.
  int64_t revision = 0;
  friend bool operator==(const JournaledRelease&, const JournaledRelease&) = default;
};

class ReleaseJournal {
 public:
  virtual ~ReleaseJournal() = default;
  // Durable when it returns OK. Appending an entry already there is not an error.
  virtual Status Append(const JournaledRelease& release) = 0;
  virtual Result<std::vector<JournaledRelease>> List() = 0;
  // Absent entries are not errors.
  virtual Status Remove(std::span<const JournaledRelease> releases) = 0;
};

}  // namespace smv::ipam
