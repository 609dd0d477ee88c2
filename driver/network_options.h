#pragma once
// The -o options of `docker network create -d static-macvlan`, parsed once into a typed config.
// Every error names the option and the value, says what is allowed and gives an example.

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/ip.h"
#include "common/status.h"

namespace smv::driver {

inline constexpr std::string_view kOptParent = "parent";               // -o parent=eth1 (or eth1.228)
inline constexpr std::string_view kOptVlan = "vlan";                   // -o vlan=228
inline constexpr std::string_view kOptVlanName = "vlan_name";          // -o vlan_name=uplink228
inline constexpr std::string_view kOptMode = "macvlan_mode";           // -o macvlan_mode=bridge
inline constexpr std::string_view kOptModeAlias = "mode";              // the seed's spelling
inline constexpr std::string_view kOptPromisc = "promisc";             // -o promisc=off
inline constexpr std::string_view kOptMtu = "mtu";                     // -o mtu=1400
inline constexpr std::string_view kOptRoutes = "routes";               // -o routes="10.254.0.0/16 via 192.0.2.254"
inline constexpr std::string_view kOptDefaultRoute = "default_route";  // -o default_route=off
inline constexpr std::string_view kOptIpam = "ipam";                   // -o ipam=docker
// Docker 28's names: announcements (gratuitous ARP / unsolicited NA) after each Join.
inline constexpr std::string_view kOptAnnounceCount = "com.docker.network.advertise_addr_nmsgs";  // 0 .. 10
inline constexpr std::string_view kOptAnnounceInterval = "com.docker.network.advertise_addr_ms";  // 100 .. 2000
inline constexpr std::string_view kOptHostIp = "host_ip";          // -o host_ip=192.0.2.253
inline constexpr std::string_view kOptIpvlanMode = "ipvlan_mode";  // -o ipvlan_mode=l2 (Docker's ipvlan name)
inline constexpr std::string_view kIpamOurs = "static-macvlan";    // the default: sticky addresses
inline constexpr std::string_view kIpamDocker = "docker";          // knowingly on Docker's IPAM

inline constexpr size_t kMaxInterfaceName = 15;  // IFNAMSIZ - 1
inline constexpr uint64_t kMinVlanId = 1;
inline constexpr uint64_t kMaxVlanId = 4094;  // 4095 is reserved by 802.1Q
inline constexpr uint64_t kMinMtu = 68;       // the IPv4 minimum
inline constexpr uint64_t kMaxMtu = 65535;
inline constexpr uint64_t kMaxAnnouncements = 10;  // Docker 28's limits
inline constexpr uint64_t kMinAnnounceIntervalMs = 100;
inline constexpr uint64_t kMaxAnnounceIntervalMs = 2000;

enum class MacvlanMode { kBridge, kPrivate, kVepa, kPassthru };
// -o ipvlan_mode: the containers' links are ipvlan (one MAC on the wire: the parent's).
enum class IpvlanMode { kL2, kL3 };
std::string_view MacvlanModeName(MacvlanMode mode);
std::optional<MacvlanMode> MacvlanModeFromName(std::string_view name);

struct Route {
  Prefix destination;
  std::optional<IpAddress> via;  // none: on-link route
  friend bool operator==(const Route&, const Route&) = default;
};

struct NetworkOptions {
  std::string parent;               // the host interface that carries the LAN
  std::optional<uint16_t> vlan_id;  // 802.1Q tag; none: macvlans sit on the parent itself
  std::string vlan_link_name;       // set when vlan_id is: "<parent>.<vlan>" or a short name
  MacvlanMode mode = MacvlanMode::kBridge;
  std::optional<IpvlanMode> ipvlan;  // set: ipvlan links in this mode instead of macvlan
  bool promisc = true;               // the seed's plugin switched the parent to promiscuous mode
  std::optional<uint32_t> mtu;       // none: inherit the parent's
  std::vector<Route> routes;
  bool default_route = true;  // container's default route via this network's gateway
  // -o ipam=docker: the user knowingly runs this network on Docker's IPAM (no reservations).
  bool docker_ipam = false;
  // The host's own address on the network (host access): a host-side macvlan link holds it.
  std::optional<IpAddress> host_ip;
  // After each Join: this many announcements of every address of the container, this far apart.
  uint32_t announce_count = 3;
  uint32_t announce_interval_ms = 1000;

  // The link the containers' macvlans are created on.
  const std::string& MacvlanParent() const { return vlan_id ? vlan_link_name : parent; }
};

// Interface names: 1-15 bytes, no '/', ':' or white space, not "." or "..".
bool IsValidInterfaceName(std::string_view name);

// Name of the VLAN link: "<parent>.<vlan>" when that fits in 15 bytes, otherwise a short,
// stable "v<vlan>-<6 hex digits of a hash of the parent>".
std::string VlanLinkName(std::string_view parent, uint16_t vlan_id);

// `routes` syntax: entries separated by ';' or ',', each "DEST/LEN" (on-link) or
// "DEST/LEN via GATEWAY"; IPv4 and IPv6 alike.
Result<std::vector<Route>> ParseRoutes(std::string_view value);

// Keys starting with "com.docker." are Docker's own and ignored; any other unknown key is an
// error that lists the known ones.
Result<NetworkOptions> ParseNetworkOptions(const std::map<std::string, std::string>& options);

}  // namespace smv::driver
