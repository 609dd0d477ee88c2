#pragma once
// An IpamStore that accepts every batch and keeps nothing: in-process benchmarks measure the
// IPAM service and its allocator alone. The store's own cost (LMDB, one fsync per commit) is
// what the socket benchmarks measure.

#include "ipam/ipam_store.h"

namespace smv::bench {

class DiscardingStore : public ipam::IpamStore {
 public:
  Result<ipam::IpamSnapshot> Load() override { return ipam::IpamSnapshot{}; }
  Status ApplyAll(std::span<const ipam::IpamBatch>) override { return OkStatus(); }
};

}  // namespace smv::bench
