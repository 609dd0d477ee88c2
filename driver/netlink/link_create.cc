// LinkManager's Create* verbs: VLAN, macvlan and ipvlan links, each tagged with the owner tag.

#include <linux/if_vlan.h>
#include <net/if.h>
#include <netlink/route/link/ipvlan.h>
#include <netlink/route/link/macvlan.h>
#include <netlink/route/link/vlan.h>

#include "driver/netlink/link_manager.h"
#include "netlink_plumbing.h"

namespace smv::nl {

Status LinkManager::CreateVlan(const std::string& parent, uint16_t vlan_id, const std::string& name) {
  std::scoped_lock lock(mu_);
  Result<int> parent_index = IndexOfLocked(parent);
  if (!parent_index.ok()) return parent_index.status();
  LinkPtr vlan(rtnl_link_vlan_alloc());
  if (vlan == nullptr) return Internal("allocate VLAN link object");
  rtnl_link_set_link(vlan.get(), *parent_index);
  rtnl_link_set_name(vlan.get(), name.c_str());
  rtnl_link_vlan_set_id(vlan.get(), vlan_id);
  // REORDER_HDR: what `vconfig set_flag <link> 1 1` did for the seed.
  rtnl_link_vlan_set_flags(vlan.get(), VLAN_FLAG_REORDER_HDR);
  // EXCL: never silently adopt a link that appeared since the caller looked.
  const int rc = rtnl_link_add(sock_.get(), vlan.get(), NLM_F_CREATE | NLM_F_EXCL);
  if (rc == -NLE_OPNOTSUPP) {
    return FailedPrecondition(
        fmt::format("create VLAN link \"{}\" on \"{}\": this kernel has no 802.1Q VLAN support: load the 8021q "
                    "module",
                    name, parent));
  }
  if (rc < 0) return NlStatus(rc, fmt::format("create VLAN link \"{}\" on \"{}\"", name, parent));
  SMV_RETURN_IF_ERROR(TagNewLinkLocked(name, "VLAN link"));
  // Up in a second step: the kernel refuses an up VLAN link on a down parent (ENETDOWN), and
  // that must not leave a half-made link behind.
  if (Status up = ChangeFlagsLocked(name, IFF_UP, 0); !up.ok()) {
    DeleteByNameLocked(name);
    return FailedPrecondition(
        fmt::format("bring up VLAN link \"{}\": is the parent interface \"{}\" up? ({})", name, parent, up.message()));
  }
  return OkStatus();
}

Status LinkManager::CreateMacvlan(const MacvlanSpec& spec) {
  std::scoped_lock lock(mu_);
  Result<int> parent_index = IndexOfLocked(spec.parent);
  if (!parent_index.ok()) return parent_index.status();
  LinkPtr link(rtnl_link_macvlan_alloc());
  if (link == nullptr) return Internal("allocate macvlan link object");
  rtnl_link_set_link(link.get(), *parent_index);
  rtnl_link_set_name(link.get(), spec.name.c_str());
  const int mode = rtnl_link_macvlan_str2mode(spec.mode.c_str());
  if (mode < 0) return InvalidArgument(fmt::format("unknown macvlan mode \"{}\"", spec.mode));
  rtnl_link_macvlan_set_mode(link.get(), static_cast<uint32_t>(mode));
  if (spec.mtu != 0) rtnl_link_set_mtu(link.get(), spec.mtu);
  if (!spec.mac.empty()) {
    nl_addr* raw = nullptr;
    if (int rc = nl_addr_parse(spec.mac.c_str(), AF_LLC, &raw); rc < 0) {
      return NlStatus(rc, fmt::format("parse MAC address \"{}\"", spec.mac));
    }
    AddrPtr addr(raw);
    rtnl_link_set_addr(link.get(), addr.get());
  }
  const int rc = rtnl_link_add(sock_.get(), link.get(), NLM_F_CREATE | NLM_F_EXCL);
  if (rc < 0) {
    return NlStatus(rc,
                    fmt::format("create macvlan link \"{}\" (mode {}) on \"{}\"", spec.name, spec.mode, spec.parent));
  }
  return TagNewLinkLocked(spec.name, "macvlan link");
}

Status LinkManager::CreateIpvlan(const std::string& name, const std::string& parent, const std::string& mode,
                                 uint32_t mtu) {
  std::scoped_lock lock(mu_);
  Result<int> parent_index = IndexOfLocked(parent);
  if (!parent_index.ok()) return parent_index.status();
  LinkPtr link(rtnl_link_ipvlan_alloc());
  if (link == nullptr) return Internal("allocate ipvlan link object");
  rtnl_link_set_link(link.get(), *parent_index);
  rtnl_link_set_name(link.get(), name.c_str());
  const int mode_value = rtnl_link_ipvlan_str2mode(mode.c_str());
  if (mode_value < 0) return InvalidArgument(fmt::format("ipvlan mode \"{}\": want l2 or l3", mode));
  if (int rc = rtnl_link_ipvlan_set_mode(link.get(), static_cast<uint16_t>(mode_value)); rc < 0) {
    return NlStatus(rc, "set ipvlan mode");
  }
  if (mtu != 0) rtnl_link_set_mtu(link.get(), mtu);
  const int rc = rtnl_link_add(sock_.get(), link.get(), NLM_F_CREATE | NLM_F_EXCL);
  if (rc < 0) {
    Status failed = NlStatus(rc, fmt::format("create ipvlan link \"{}\" (mode {}) on \"{}\"", name, mode, parent));
    // A kernel without ipvlan answers "operation not supported": say what is missing.
    if (rc == -NLE_OPNOTSUPP)
      return FailedPrecondition(failed.message() + ": this kernel has no ipvlan (module ipvlan)");
    return failed;
  }
  return TagNewLinkLocked(name, "ipvlan link");
}

Status LinkManager::TagNewLinkLocked(const std::string& name, std::string_view what) {
  if (owner_tag_.empty()) return OkStatus();
  int rc = 0;
  LinkPtr made = GetLink(sock_.get(), name, rc);
  if (rc == 0) {
    LinkPtr change(rtnl_link_alloc());
    if (change == nullptr) return Internal("allocate link object");
    rtnl_link_set_ifalias(change.get(), owner_tag_.c_str());
    rc = rtnl_link_change(sock_.get(), made.get(), change.get(), 0);
  }
  if (rc < 0) {
    DeleteByNameLocked(name);
    return NlStatus(rc, fmt::format("tag {} \"{}\" with its owner \"{}\"", what, name, owner_tag_));
  }
  return OkStatus();
}

}  // namespace smv::nl
