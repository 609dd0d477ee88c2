#pragma once
// The kernel links the network driver needs, behind a small interface: LinkManager implements
// it with libnl, tests/support/fake_link_ops.h in memory. No libnl type appears here.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/ip.h"
#include "common/status.h"

namespace smv::nl {

struct LinkInfo {
  int index = 0;
  std::string name;
  std::string kind;          // "vlan", "macvlan", "veth", "" for a plain NIC
  int parent_index = 0;      // 0: no parent (a real NIC, or a parent in another namespace)
  std::string parent_name;   // "" when unknown
  uint16_t vlan_id = 0;      // kind "vlan" only
  bool reorder_hdr = false;  // kind "vlan" only
  std::string macvlan_mode;  // kind "macvlan" only
  uint32_t mtu = 0;
  bool up = false;
  bool carrier = false;  // the lower layer is up (IFF_LOWER_UP): a cable, a peer
  bool promisc = false;
  std::string mac;    // "02:42:c0:00:02:0a"
  std::string alias;  // IFLA_IFALIAS: the owner tag on links a daemon made ("" when none)
};

// Links a daemon creates carry its owner tag as their alias: kOwnerTagPrefix and the instance id
// of its state directory. Two daemons in one network namespace (two state directories) then never
// delete each other's links at start-up or in the reaper.
inline constexpr std::string_view kOwnerTagPrefix = "static-macvlan:";

// True when `alias` is another instance's owner tag. Untagged links (made before links had tags,
// or by hand) belong to nobody and stay deletable, so an upgrade still sweeps old orphans; a
// LinkOps without a tag of its own (tests, tools) checks nothing.
inline bool TaggedByAnother(std::string_view alias, std::string_view own_tag) {
  return !own_tag.empty() && alias.starts_with(kOwnerTagPrefix) && alias != own_tag;
}

struct MacvlanSpec {
  std::string name;
  std::string parent;
  std::string mode;  // bridge, private, vepa, passthru
  uint32_t mtu = 0;  // 0: the parent's
  std::string mac;   // "": the kernel picks one
};

// What DeleteContainerLink found in the other network namespaces.
enum class ContainerLinkDeletion {
  kDeleted,      // one of our links on the parent with that MAC carried the address: deleted
  kNoSuchLink,   // such a link is there, but carries no such address
  kNoNamespace,  // no namespace holds such a link, or the parent is gone (the container stopped)
};

// With an owner tag set (LinkManager::SetOwnerTag), every Create* tags the link it makes, and
// Delete refuses a link tagged by another instance.
class LinkOps {
 public:
  virtual ~LinkOps() = default;
  // nullopt when there is no link of that name.
  virtual Result<std::optional<LinkInfo>> Find(const std::string& name) = 0;
  virtual Result<std::vector<LinkInfo>> List() = 0;
  // Creates VLAN `vlan_id` on `parent` named `name`, with REORDER_HDR, and brings it up.
  // kAlreadyExists when `name` exists; kFailedPrecondition when the kernel has no 802.1Q.
  virtual Status CreateVlan(const std::string& parent, uint16_t vlan_id, const std::string& name) = 0;
  // Creates a macvlan link (left down: dockerd moves it into the container and brings it up).
  virtual Status CreateMacvlan(const MacvlanSpec& spec) = 0;
  // Creates an ipvlan link, mode "l2" or "l3" (left down, as above); its MAC is the parent's.
  virtual Status CreateIpvlan(const std::string& name, const std::string& parent, const std::string& mode,
                              uint32_t mtu) = 0;
  // kNotFound when absent; kFailedPrecondition, leaving it, when another instance's tag is on it.
  virtual Status Delete(const std::string& name) = 0;
  virtual Status SetPromisc(const std::string& name, bool on) = 0;
  virtual Status SetUp(const std::string& name) = 0;

  // Host access (-o host_ip): the host-side macvlan link answers ARP only for its own address
  // and accepts traffic whose return route is elsewhere (see TuneHostLink in link_manager.cc).
  virtual Status TuneHostLink(const std::string& name) = 0;
  // Gives `link` `address` as a host address (/32, /128: no subnet route; IPv6 without DAD).
  // Present already: OK.
  virtual Status AddHostAddress(const std::string& link, const IpAddress& address) = 0;
  // A host route (/32, /128) to `address` through `link`. Present already: OK.
  virtual Status AddHostRoute(const IpAddress& address, const std::string& link) = 0;
  // kNotFound when absent.
  virtual Status DeleteHostRoute(const IpAddress& address, const std::string& link) = 0;

  // A container's address another host now holds (a fleet): in the network namespaces other than
  // the caller's that the caller's namespace knows by a netnsid (those its links were moved to, by
  // dockerd: the containers'), deletes each link that this instance made (its owner tag; with no
  // tag of its own, any) on `parent` of the caller's namespace, with MAC `mac`, carrying `address`.
  // Docker's own macvlan and veth links, another network's endpoint on another parent with the same
  // address and MAC (Docker derives MACs from addresses too), and the caller's own links are never
  // matched. Needs CAP_NET_ADMIN only: no path to the namespace, no setns (the managed plugin has
  // neither). Deleted, not set down: rtnetlink deletes a link in another namespace but cannot change
  // one (RTM_SETLINK takes no target netnsid). `docker restart` gives the container a new link.
  virtual Result<ContainerLinkDeletion> DeleteContainerLink(const std::string& mac, const IpAddress& address,
                                                            const std::string& parent) = 0;
};

}  // namespace smv::nl
