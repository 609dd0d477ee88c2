#pragma once
// A daemon on the fleet's shared book (--store etcd://...) that keeps some pools to itself:
// a network created with --ipam-opt scope=local takes its pool from this host's own book (LMDB),
// every other network from the shared one. Two books, each behind its own IpamService; this
// routes each call to one of them. A local pool's id carries kLocalPoolPrefix, so every later
// call (dockerd hands the id back) finds its book without a lookup.
//
// One subnet is never in both books on this host: its addresses would be handed out twice. A
// local pool on a subnet the fleet already uses is refused too, as far as this host knows the
// fleet's pools; a subnet another host makes shared later is the operator's to avoid.

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "ipam/ipam_api.h"

namespace smv::ipam {

class SplitIpam : public IpamApi {
 public:
  static constexpr std::string_view kLocalPoolPrefix = "local ";

  // Both must outlive this.
  SplitIpam(IpamApi& shared, IpamApi& local) : shared_(shared), local_(local) {}

  Result<PoolResult> RequestPool(const PoolRequest& request) override;
  Status ReleasePool(const std::string& pool_id) override;
  Status AgreeAuxAddresses(const Prefix& subnet, const std::map<std::string, std::string>& aux) override;
  Result<std::string> RequestAddress(const AddressCall& call) override;
  Status ReleaseAddress(const std::string& pool_id, const std::string& address) override;
  Status CatchUp() override;
  Result<AttachOutcome> AttachName(const std::string& pool_id, const IpAddress& address, const std::string& name,
                                   const std::string& mac = "") override;
  bool AnyReserved(const std::string& pool_id, const std::vector<std::string>& names) override;
  std::string NameForMac(const std::string& pool_id, const std::string& mac) const override;
  std::vector<std::string> PoolsLeasing(const IpAddress& address) const override;
  std::vector<std::string> PoolsOnSubnet(const Prefix& subnet) const override;
  Result<bool> SubnetInUse(const Prefix& subnet) override;  // in either book
  Status Reserve(const std::string& pool_id, const std::string& name, const IpAddress& address) override;
  // In both books; the shared book's error, if any, after the local book has released.
  Result<int> Release(const std::string& name_or_address) override;
  Result<int> ReleaseNode(const std::string& node) override;  // the shared book's
  // Only the local book's reservations age out: this host's engine cannot tell a name running
  // on another host from a gone one.
  Result<std::vector<std::string>> ApplyPresence(const std::vector<std::string>& present) override;
  std::vector<ReservationView> ListReservations() const override;
  size_t LeaseCount(const std::string& pool_id) const override;
  std::vector<PoolUsage> PoolUsages() const override;
  bool HasActivePool(const std::string& pool_id) const override;
  std::optional<PoolConfig> FindPool(const std::string& pool_id) const override;
  Result<HeldOutcome> KeepHeld(const std::string& pool_id, const IpAddress& address, const std::string& name,
                               const std::string& mac, uint64_t releases_seen) override;
  uint64_t LocalReleases() const override;

 private:
  // The book that holds `pool_id`, and the id as that book knows it.
  std::pair<IpamApi*, std::string> Route(const std::string& pool_id) const;

  IpamApi& shared_;
  IpamApi& local_;
};

// One snapshot of both books as a daemon on them shows it (fsck): local pool ids prefixed.
IpamSnapshot MergeLocalBook(IpamSnapshot shared, IpamSnapshot local);

}  // namespace smv::ipam
