#pragma once
// RequestPool arguments parsed, validated and put in canonical form once; everything after
// this sees only PoolConfig.

#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include "common/ip.h"
#include "common/status.h"

namespace smv::ipam {

// --ipam-opt keys (docker network create --ipam-opt KEY=VALUE).
inline constexpr std::string_view kOptReleaseAfter = "release_after";  // the seed's ipDelayReuse
// Which address book holds the pool: "shared" (the fleet's, in etcd) or "local" (this host's own,
// in LMDB). Not part of the pool's configuration: it picks the book, the book holds the pool.
inline constexpr std::string_view kOptScope = "scope";

struct PoolRequest {
  std::string address_space;
  std::string pool;                            // --subnet; "" when the user gave none
  std::string sub_pool;                        // --ip-range
  std::map<std::string, std::string> options;  // --ipam-opt
  bool v6 = false;
};

struct PoolConfig {
  std::string id;               // PoolIdFor(subnet, range)
  Prefix subnet;                // host bits cleared
  std::optional<Prefix> range;  // --ip-range: where dynamic addresses come from
  std::map<std::string, std::string> options;
  // How long a name's reservation outlives its container; nullopt = until released by a user.
  std::optional<int64_t> release_after_seconds;

  IpAddress FirstUsable() const;   // subnet network + 1
  IpAddress LastUsable() const;    // IPv4: broadcast - 1; IPv6: the last address
  IpAddress DynamicFirst() const;  // first usable address inside the range (or the subnet)
  IpAddress DynamicLast() const;
  bool IsUsable(const IpAddress& ip) const {
    return ip >= FirstUsable() && ip <= LastUsable() && ip.family() == subnet.family();
  }
  friend bool operator==(const PoolConfig&, const PoolConfig&) = default;
};

// Stable, readable pool ids: the same subnet and range always give the same id, so a network
// that is removed and created again finds its name reservations again.
std::string PoolIdFor(const Prefix& subnet, const std::optional<Prefix>& range);

// Validates a RequestPool. Errors name the docker flag, the value, and what is allowed.
Result<PoolConfig> ParsePoolRequest(const PoolRequest& request);

enum class PoolScope {
  kDefault,  // the daemon's book: shared with --store etcd://..., local with lmdb
  kLocal,
  kShared,
};
// The --ipam-opt scope of `request`; an unknown value is refused naming it.
Result<PoolScope> ScopeOf(const PoolRequest& request);

// "90", "90s", "15m", "24h", "7d" -> seconds. "keep" -> nullopt.
Result<std::optional<int64_t>> ParseRetention(std::string_view value);

}  // namespace smv::ipam
