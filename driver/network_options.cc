#include "driver/network_options.h"

#include <charconv>
#include <cstdint>
#include <map>
#include <utility>
#include <vector>

namespace smv::driver {
namespace {

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

Status BadValue(std::string_view key, std::string_view value, std::string_view want, std::string_view example) {
  return InvalidArgument(
      fmt::format("invalid value \"{}\" for option \"{}\": want {} (example: -o {})", value, key, want, example));
}

std::optional<uint64_t> ParseNumber(std::string_view text) {
  uint64_t n = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
  if (text.empty() || ec != std::errc() || ptr != text.data() + text.size()) return std::nullopt;
  return n;
}

std::optional<bool> ParseSwitch(std::string_view value) {
  if (value == "on" || value == "true" || value == "yes" || value == "1") return true;
  if (value == "off" || value == "false" || value == "no" || value == "0") return false;
  return std::nullopt;
}

}  // namespace

std::string_view MacvlanModeName(MacvlanMode mode) {
  switch (mode) {
    case MacvlanMode::kBridge: return "bridge";
    case MacvlanMode::kPrivate: return "private";
    case MacvlanMode::kVepa: return "vepa";
    case MacvlanMode::kPassthru: return "passthru";
  }
  return "bridge";
}

std::optional<MacvlanMode> MacvlanModeFromName(std::string_view name) {
  for (MacvlanMode mode : {MacvlanMode::kBridge, MacvlanMode::kPrivate, MacvlanMode::kVepa, MacvlanMode::kPassthru}) {
    if (MacvlanModeName(mode) == name) return mode;
  }
  return std::nullopt;
}

bool IsValidInterfaceName(std::string_view name) {
  if (name.empty() || name.size() > kMaxInterfaceName || name == "." || name == "..") return false;
  for (char c : name) {
    if (c == '/' || c == ':' || c == ' ' || c == '\t' || c == '\n' || c == '\0' ||
        static_cast<unsigned char>(c) < 0x21 || static_cast<unsigned char>(c) > 0x7e) {
      return false;
    }
  }
  return true;
}

std::string VlanLinkName(std::string_view parent, uint16_t vlan_id) {
  std::string name = fmt::format("{}.{}", parent, vlan_id);
  if (name.size() <= kMaxInterfaceName) return name;
  uint32_t hash = 2166136261u;  // FNV-1a: stable across versions and hosts
  for (char c : parent) hash = (hash ^ static_cast<uint8_t>(c)) * 16777619u;
  return fmt::format("v{}-{:06x}", vlan_id, hash & 0xffffff);
}

Result<std::vector<Route>> ParseRoutes(std::string_view value) {
  std::vector<Route> routes;
  constexpr std::string_view kWant = "routes separated by ';', each \"DEST/LEN\" or \"DEST/LEN via GATEWAY\"";
  constexpr std::string_view kExample = "routes=\"10.254.0.0/16 via 192.0.2.254; 198.51.100.0/24\"";
  size_t start = 0;
  while (start <= value.size()) {
    size_t end = value.find_first_of(";,", start);
    if (end == std::string_view::npos) end = value.size();
    const std::string_view entry = Trim(value.substr(start, end - start));
    start = end + 1;
    if (entry.empty()) continue;
    std::string_view dest_text = entry;
    std::string_view via_text;
    if (size_t via = entry.find(" via "); via != std::string_view::npos) {
      dest_text = Trim(entry.substr(0, via));
      via_text = Trim(entry.substr(via + 5));
    }
    std::optional<Prefix> dest = Prefix::Parse(dest_text);
    if (!dest) {
      return BadValue(kOptRoutes, entry, fmt::format("{}; \"{}\" is not a CIDR", kWant, dest_text), kExample);
    }
    if (dest->HasHostBits()) {
      return BadValue(kOptRoutes, entry,
                      fmt::format("a network address; for a /{} that is {}/{}", dest->length(),
                                  dest->Network().ToString(), dest->length()),
                      kExample);
    }
    Route route{*dest, std::nullopt};
    if (!via_text.empty()) {
      std::optional<IpAddress> via = IpAddress::Parse(via_text);
      if (!via || via->family() != dest->family()) {
        return BadValue(kOptRoutes, entry, fmt::format("a gateway address of the same family as {}", dest_text),
                        kExample);
      }
      route.via = *via;
    }
    routes.push_back(route);
  }
  if (routes.empty()) return BadValue(kOptRoutes, value, kWant, kExample);
  return routes;
}

namespace {

constexpr std::string_view kWantInterfaceName = "an interface name of 1 to 15 characters without '/', ':' or spaces";

// What the option loop collects before the cross-option checks.
struct Parsing {
  NetworkOptions out;
  std::optional<std::string> vlan_name;
};

using OptionParser = Status (*)(std::string_view key, const std::string& value, Parsing& p);

Status ParseVlan(std::string_view key, const std::string& value, Parsing& p) {
  std::optional<uint64_t> id = ParseNumber(value);
  if (!id || *id < kMinVlanId || *id > kMaxVlanId) return BadValue(key, value, "a number from 1 to 4094", "vlan=228");
  p.out.vlan_id = static_cast<uint16_t>(*id);
  return OkStatus();
}

Status ParseVlanName(std::string_view key, const std::string& value, Parsing& p) {
  if (!IsValidInterfaceName(value)) return BadValue(key, value, kWantInterfaceName, "vlan_name=uplink228");
  p.vlan_name = value;
  return OkStatus();
}

Status ParseMode(std::string_view key, const std::string& value, Parsing& p) {
  std::optional<MacvlanMode> mode = MacvlanModeFromName(value);
  if (!mode) return BadValue(key, value, "bridge, private, vepa or passthru (default bridge)", "macvlan_mode=bridge");
  p.out.mode = *mode;
  return OkStatus();
}

Status ParseSwitchOption(std::string_view key, const std::string& value, bool& out, std::string_view example) {
  std::optional<bool> on = ParseSwitch(value);
  if (!on) return BadValue(key, value, "on or off (default on)", example);
  out = *on;
  return OkStatus();
}

Status ParseMtu(std::string_view key, const std::string& value, Parsing& p) {
  std::optional<uint64_t> mtu = ParseNumber(value);
  if (!mtu || *mtu < kMinMtu || *mtu > kMaxMtu) {
    return BadValue(key, value, "a number from 68 to the parent interface's MTU", "mtu=1400");
  }
  p.out.mtu = static_cast<uint32_t>(*mtu);
  return OkStatus();
}

Status ParseRoutesOption(std::string_view, const std::string& value, Parsing& p) {
  Result<std::vector<Route>> routes = ParseRoutes(value);
  if (!routes.ok()) return routes.status();
  p.out.routes = std::move(routes).value();
  return OkStatus();
}

Status ParseIpam(std::string_view key, const std::string& value, Parsing& p) {
  if (value != kIpamOurs && value != kIpamDocker) {
    return BadValue(key, value, "static-macvlan (the default) or docker (accept Docker's IPAM: no sticky addresses)",
                    "ipam=docker");
  }
  p.out.docker_ipam = value == kIpamDocker;
  return OkStatus();
}

Status ParseIpvlanMode(std::string_view key, const std::string& value, Parsing& p) {
  if (value == "l2") {
    p.out.ipvlan = IpvlanMode::kL2;
  } else if (value == "l3") {
    p.out.ipvlan = IpvlanMode::kL3;
  } else {
    return BadValue(key, value, "l2 or l3 (ipvlan links instead of macvlan: one MAC on the wire)", "ipvlan_mode=l2");
  }
  return OkStatus();
}

Status ParseHostIp(std::string_view key, const std::string& value, Parsing& p) {
  std::optional<IpAddress> ip = IpAddress::Parse(value);
  if (!ip) return BadValue(key, value, "an IPv4 or IPv6 address of the network for the host", "host_ip=192.0.2.253");
  p.out.host_ip = *ip;
  return OkStatus();
}

Status ParseAnnounceCount(std::string_view key, const std::string& value, Parsing& p) {
  std::optional<uint64_t> n = ParseNumber(value);
  if (!n || *n > kMaxAnnouncements) {
    return BadValue(key, value, "a number of announcements from 0 (none) to 10 (default 3)",
                    "com.docker.network.advertise_addr_nmsgs=0");
  }
  p.out.announce_count = static_cast<uint32_t>(*n);
  return OkStatus();
}

Status ParseAnnounceInterval(std::string_view key, const std::string& value, Parsing& p) {
  std::optional<uint64_t> ms = ParseNumber(value);
  if (!ms || *ms < kMinAnnounceIntervalMs || *ms > kMaxAnnounceIntervalMs) {
    return BadValue(key, value, "milliseconds between announcements, from 100 to 2000 (default 1000)",
                    "com.docker.network.advertise_addr_ms=500");
  }
  p.out.announce_interval_ms = static_cast<uint32_t>(*ms);
  return OkStatus();
}

// Every option a network takes, in the order errors list them (the most used first).
const std::vector<std::pair<std::string_view, OptionParser>>& OptionParsers() {
  static const std::vector<std::pair<std::string_view, OptionParser>> parsers = {
      {kOptParent,
       [](std::string_view, const std::string& v, Parsing& p) {
         p.out.parent = v;
         return OkStatus();
       }},
      {kOptVlan, ParseVlan},
      {kOptVlanName, ParseVlanName},
      {kOptMode, ParseMode},
      {kOptModeAlias, ParseMode},
      {kOptIpvlanMode, ParseIpvlanMode},
      {kOptPromisc, [](std::string_view k, const std::string& v,
                       Parsing& p) { return ParseSwitchOption(k, v, p.out.promisc, "promisc=off"); }},
      {kOptMtu, ParseMtu},
      {kOptRoutes, ParseRoutesOption},
      {kOptDefaultRoute, [](std::string_view k, const std::string& v,
                            Parsing& p) { return ParseSwitchOption(k, v, p.out.default_route, "default_route=off"); }},
      {kOptIpam, ParseIpam},
      {kOptHostIp, ParseHostIp},
      {kOptAnnounceCount, ParseAnnounceCount},
      {kOptAnnounceInterval, ParseAnnounceInterval},
  };
  return parsers;
}

OptionParser FindParser(std::string_view key) {
  for (const auto& [known, parser] : OptionParsers()) {
    if (known == key) return parser;
  }
  return nullptr;
}

// "parent, vlan, ...": the known options of an "unknown option" error, read from the table above.
const std::string& KnownOptions() {
  static const std::string known = [] {
    std::string out;
    for (const auto& [key, parser] : OptionParsers()) out += (out.empty() ? "" : ", ") + std::string(key);
    return out;
  }();
  return known;
}

// The built-in macvlan driver's form: parent=eth1.228 means VLAN 228 on eth1.
Status SplitVlanParent(Parsing& p) {
  NetworkOptions& out = p.out;
  const size_t dot = out.parent.rfind('.');
  if (dot == std::string::npos || dot == 0) return OkStatus();
  std::optional<uint64_t> id = ParseNumber(std::string_view(out.parent).substr(dot + 1));
  if (!id) return OkStatus();
  if (*id < kMinVlanId || *id > kMaxVlanId) {
    return BadValue(kOptParent, out.parent, "a VLAN id from 1 to 4094 after the dot", "parent=eth1.228");
  }
  if (out.vlan_id && *out.vlan_id != *id) {
    return InvalidArgument(
        fmt::format("option \"parent\" is \"{}\" (VLAN {}) but option \"vlan\" is {}: give the VLAN once "
                    "(example: -o parent=eth1 -o vlan=228)",
                    out.parent, *id, *out.vlan_id));
  }
  // The whole "eth1.228" names the VLAN link, so it must itself be a valid interface name
  // (found by fuzzing: a 19-character parent gave a VLAN link name the kernel refuses).
  if (!IsValidInterfaceName(out.parent)) return BadValue(kOptParent, out.parent, kWantInterfaceName, "parent=eth1.228");
  if (!p.vlan_name) p.vlan_name = out.parent;
  out.vlan_id = static_cast<uint16_t>(*id);
  out.parent.resize(dot);
  return OkStatus();
}

Status CheckParent(const NetworkOptions& out) {
  if (!IsValidInterfaceName(out.parent)) return BadValue(kOptParent, out.parent, kWantInterfaceName, "parent=eth1");
  if (out.parent == "lo") {
    return BadValue(kOptParent, out.parent, "an Ethernet interface; the loopback cannot carry macvlan links",
                    "parent=eth1");
  }
  return OkStatus();
}

}  // namespace

Result<NetworkOptions> ParseNetworkOptions(const std::map<std::string, std::string>& options) {
  Parsing p;
  for (const auto& [key, value] : options) {
    if (const OptionParser parser = FindParser(key); parser != nullptr) {
      SMV_RETURN_IF_ERROR(parser(key, value, p));
    } else if (!key.starts_with("com.docker.")) {
      return InvalidArgument(fmt::format("unknown option \"{}\" (known: {})", key, KnownOptions()));
    }
  }
  if (p.out.parent.empty()) {
    return InvalidArgument("option \"parent\" is required: the host interface on the LAN (example: -o parent=eth1)");
  }
  SMV_RETURN_IF_ERROR(SplitVlanParent(p));
  SMV_RETURN_IF_ERROR(CheckParent(p.out));
  if (p.vlan_name && !p.out.vlan_id) {
    return InvalidArgument(
        fmt::format("option \"vlan_name\" (\"{}\") needs option \"vlan\" (example: -o vlan=228 -o vlan_name={})",
                    *p.vlan_name, *p.vlan_name));
  }
  if (p.out.vlan_id) p.out.vlan_link_name = p.vlan_name ? *p.vlan_name : VlanLinkName(p.out.parent, *p.out.vlan_id);
  if (p.out.ipvlan) {
    for (std::string_view macvlan_only : {kOptMode, kOptModeAlias, kOptHostIp}) {
      if (options.contains(std::string(macvlan_only))) {
        return InvalidArgument(
            fmt::format("option \"{}\" is for macvlan networks; this one has -o ipvlan_mode={} (give one or the other)",
                        macvlan_only, options.at(std::string(kOptIpvlanMode))));
      }
    }
    // One MAC on the wire: the parent needs no promiscuous mode unless asked for.
    if (!options.contains(std::string(kOptPromisc))) p.out.promisc = false;
  }
  return p.out;
}

}  // namespace smv::driver
