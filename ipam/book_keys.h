#pragma once
// The shared book's keys in etcd, spelled here only (etcd_store.h describes what each holds):
//   <prefix>pool/<pool key>  <prefix>lease/<lease key>  <prefix>reservation/<reservation key>
//   <prefix>address/<lease key>  <prefix>node/<node>/commit  <prefix>layout  <prefix>instance/<node>
// Record keys and values are records.h's. tests/golden/etcd-layout-2.txt pins the layout.

#include <string>
#include <string_view>

#include "common/ip.h"

namespace smv::ipam {

// Where the book lives in etcd unless told otherwise.
inline constexpr std::string_view kDefaultBookPrefix = "/static-macvlan/v1/";

// The book's key families under one prefix.
struct BookKeys {
  explicit BookKeys(std::string p)
      : prefix(std::move(p)),
        pools(prefix + "pool/"),
        leases(prefix + "lease/"),
        reservations(prefix + "reservation/"),
        reserved_addresses(prefix + "address/"),
        nodes(prefix + "node/"),
        instances(prefix + "instance/"),
        layout(prefix + "layout") {}
  std::string Pool(const std::string& pool_id) const;
  std::string Lease(const std::string& pool_id, const IpAddress& address) const;
  std::string Reservation(const std::string& pool_id, const std::string& name) const;
  std::string ReservedAddress(const std::string& pool_id, const IpAddress& address) const;
  // This node's last commit (fences a commit whose answer was lost).
  std::string Commit(const std::string& node) const { return nodes + node + "/commit"; }
  // Who claims --node-name `node` (node_claim.h).
  std::string Instance(const std::string& node) const { return instances + node; }
  // Error messages name a family as "etcd <family>".
  static std::string Where(std::string_view family) { return "etcd " + std::string(family); }
  std::string prefix, pools, leases, reservations, reserved_addresses, nodes, instances, layout;
};

}  // namespace smv::ipam
