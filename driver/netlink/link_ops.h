#pragma once
// The kernel links the network driver needs, behind a small interface: LinkManager implements
// it with libnl, tests/support/fake_link_ops.h in memory. No libnl type appears here.

#include <cstdint>
#include <optional>
#include <string>
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
  std::string mac;  // "02:42:c0:00:02:0a"
};

struct MacvlanSpec {
  std::string name;
  std::string parent;
  std::string mode;  // bridge, private, vepa, passthru
  uint32_t mtu = 0;  // 0: the parent's
  std::string mac;   // "": the kernel picks one
};

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
  // kNotFound when absent.
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
};

}  // namespace smv::nl
