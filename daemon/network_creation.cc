#include "daemon/network_creation.h"

#include <spdlog/spdlog.h>

#include <optional>
#include <set>
#include <utility>
#include <vector>

#include "common/log.h"
#include "common/shell_word.h"

namespace smv::daemon {
namespace {

using api::wire::CreateNetworkRequest;
using api::wire::PoolOrigin;

// The address spaces of Docker's built-in IPAM drivers.
const std::set<std::string, std::less<>> kDockerAddressSpaces = {"LocalDefault", "GlobalDefault"};

// The `docker network create` that gives this network our IPAM, from what dockerd sent.
std::string CorrectedCommand(const CreateNetworkRequest& r) {
  std::string cmd = "docker network create -d static-macvlan --ipam-driver static-macvlan";
  if (!r.v6.empty()) cmd += " --ipv6";
  for (const auto* family : {&r.v4, &r.v6}) {
    for (const PoolOrigin& o : *family) {
      cmd += " --subnet " + o.data.pool.ToString();
      if (o.data.gateway) cmd += " --gateway " + o.data.gateway->ToString();
      for (const auto& [name, address] : o.aux) cmd += " --aux-address " + ShellWord(name + "=" + address);
    }
  }
  if (r.call.internal) cmd += " --internal";
  for (const auto& [key, value] : r.call.options) {
    if (key != driver::kOptIpam) cmd += " -o " + ShellWord(key + "=" + value);
  }
  return cmd + " NAME";
}

}  // namespace

Status AdmitIpam(const CreateNetworkRequest& request, const driver::NetworkOptions& options,
                 const std::function<bool(const Prefix&)>& has_pool) {
  std::string foreign_space;
  bool foreign = false;
  for (const auto* family : {&request.v4, &request.v6}) {
    for (const PoolOrigin& o : *family) {
      // Docker's own IPAM names its spaces; any other space must have asked us for the pool.
      const bool ours = !kDockerAddressSpaces.contains(o.address_space) && has_pool(o.data.pool);
      if (!ours && !foreign) foreign_space = o.address_space;
      foreign = foreign || !ours;
    }
  }
  if (!foreign) return OkStatus();
  if (options.docker_ipam) {
    spdlog::warn(
        "network {} uses Docker's IPAM (-o ipam=docker): containers get addresses from dockerd, and "
        "names will not keep their addresses",
        ShortId(request.call.network_id));
    return OkStatus();
  }
  const std::string source = kDockerAddressSpaces.contains(foreign_space)
                                 ? fmt::format("Docker's default IPAM (address space \"{}\")", foreign_space)
                                 : "an IPAM other than static-macvlan's (it never asked us for this pool)";
  return FailedPrecondition(fmt::format(
      "this network's addresses would come from {}, so containers would not keep their addresses by name; "
      "create it with static-macvlan's IPAM: {} (or add -o ipam=docker to use Docker's IPAM knowingly, without "
      "sticky addresses)",
      source, CorrectedCommand(request)));
}

Status NetworkCreation::Create(const CreateNetworkRequest& request) {
  auto has_pool = [this](const Prefix& subnet) { return !ipam_.PoolsOnSubnet(subnet).empty(); };
  std::optional<std::pair<std::string, IpAddress>> host_lease;  // pool, host_ip: undone if the create fails
  // The driver calls this once it has parsed the options, before it stores or creates anything.
  auto admit = [&](const driver::NetworkOptions& options) -> Status {
    SMV_RETURN_IF_ERROR(AdmitIpam(request, options, has_pool));
    for (const auto* family : {&request.v4, &request.v6}) {
      for (const PoolOrigin& o : *family) SMV_RETURN_IF_ERROR(ipam_.AgreeAuxAddresses(o.data.pool, o.aux));
    }
    if (options.host_ip && !options.docker_ipam) {
      Result<std::string> pool = ReserveHostAddress(request, *options.host_ip);
      if (!pool.ok()) return pool.status();
      host_lease.emplace(*pool, *options.host_ip);
    }
    return OkStatus();
  };
  Status created = driver_.CreateNetwork(request.call, admit);
  if (!created.ok() && host_lease) {
    if (Status s = ipam_.ReleaseAddress(host_lease->first, host_lease->second.ToString()); !s.ok()) {
      spdlog::warn("rollback: host_ip {} not released: {}", host_lease->second.ToString(), s.message());
    }
  }
  return created;
}

Result<std::string> NetworkCreation::ReserveHostAddress(const CreateNetworkRequest& request, const IpAddress& host_ip) {
  for (const auto* family : {&request.v4, &request.v6}) {
    for (const PoolOrigin& o : *family) {
      if (!o.data.pool.Contains(host_ip)) continue;
      const std::vector<std::string> pools = ipam_.PoolsOnSubnet(o.data.pool);
      if (pools.size() != 1) break;
      Result<std::string> held = ipam_.RequestAddress({.pool_id = pools.front(), .address = host_ip.ToString()});
      if (!held.ok()) return held.status().Annotate(fmt::format("option \"host_ip\" ({})", host_ip.ToString()));
      return pools.front();
    }
  }
  return InvalidArgument(fmt::format(
      "invalid value \"{}\" for option \"host_ip\": want an address inside the network's subnet", host_ip.ToString()));
}

}  // namespace smv::daemon
