// libFuzzer target for the parsers users feed: -o options (lines "key=value"), routes, CIDRs and
// addresses, RequestPool arguments. Anything may be rejected; nothing may crash, and what is
// accepted must be consistent.

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>

#include "common/ip.h"
#include "driver/network_options.h"
#include "ipam/pool.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string input(reinterpret_cast<const char*>(data), size);
  std::map<std::string, std::string> options;
  size_t start = 0;
  while (start < input.size()) {
    size_t end = input.find('\n', start);
    if (end == std::string::npos) end = input.size();
    const std::string line = input.substr(start, end - start);
    const size_t eq = line.find('=');
    if (eq != std::string::npos) options[line.substr(0, eq)] = line.substr(eq + 1);
    start = end + 1;
  }
  smv::Result<smv::driver::NetworkOptions> parsed = smv::driver::ParseNetworkOptions(options);
  if (parsed.ok()) {
    if (!smv::driver::IsValidInterfaceName(parsed->parent)) __builtin_trap();
    if (parsed->vlan_id && (*parsed->vlan_id < 1 || *parsed->vlan_id > 4094)) __builtin_trap();
    if (parsed->vlan_id && parsed->vlan_link_name.size() > 15) __builtin_trap();
  } else if (parsed.status().message().empty()) {
    __builtin_trap();  // every refusal says why
  }
  (void)smv::driver::ParseRoutes(input);
  if (std::optional<smv::Prefix> p = smv::Prefix::Parse(input)) {
    if (!p->Contains(p->Network()) || !p->Contains(p->Last())) __builtin_trap();
    if (smv::Prefix::Parse(p->ToString()) != p) __builtin_trap();  // round trip
  }
  if (std::optional<smv::IpAddress> ip = smv::IpAddress::Parse(input)) {
    if (smv::IpAddress::Parse(ip->ToString()) != ip) __builtin_trap();
  }
  const size_t bar = input.find('|');
  smv::ipam::PoolRequest request{"l",
                                 input.substr(0, bar),
                                 bar == std::string::npos ? "" : input.substr(bar + 1),
                                 {},
                                 input.find(':') != std::string::npos};
  if (smv::Result<smv::ipam::PoolConfig> pool = smv::ipam::ParsePoolRequest(request); pool.ok()) {
    if (pool->DynamicFirst() > pool->DynamicLast()) __builtin_trap();
    if (!pool->subnet.Contains(pool->DynamicFirst())) __builtin_trap();
  }
  return 0;
}
