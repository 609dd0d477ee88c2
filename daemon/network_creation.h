#pragma once
// The one owner of every creation that crosses services, as the reconciler owns every cleanup:
// a network is created by the driver only once the IPAM agrees (its pools came from us, its aux
// addresses are held, its -o host_ip is leased), and a failed create gives the lease back.

#include <functional>
#include <string>

#include "common/status.h"
#include "daemon/api/wire.h"
#include "driver/driver_service.h"
#include "ipam/ipam_api.h"

namespace smv::daemon {

class NetworkCreation {
 public:
  // Both references must outlive this object.
  NetworkCreation(driver::DriverService& driver, ipam::IpamApi& ipam) : driver_(driver), ipam_(ipam) {}

  // NetworkDriver.CreateNetwork: admits the network (AdmitIpam, aux addresses, host_ip), then has
  // the driver create it; nothing stays leased when it fails.
  Status Create(const api::wire::CreateNetworkRequest& request);

 private:
  // -o host_ip: leased in its pool so that no container gets it; returns the pool id.
  Result<std::string> ReserveHostAddress(const api::wire::CreateNetworkRequest& request, const IpAddress& host_ip);

  driver::DriverService& driver_;
  ipam::IpamApi& ipam_;
};

// A network whose pools did not come from our IPAM is refused with the corrected command, unless
// the user chose Docker's IPAM knowingly (-o ipam=docker). `has_pool(subnet)` tells whether our
// IPAM holds a pool for a subnet.
Status AdmitIpam(const api::wire::CreateNetworkRequest& request, const driver::NetworkOptions& options,
                 const std::function<bool(const Prefix&)>& has_pool);

}  // namespace smv::daemon
