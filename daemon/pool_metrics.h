#pragma once
// The pool gauges of GET /metrics, composed from the driver's networks and the IPAM's pools and
// reservations as they are now.

#include <vector>

#include "common/metrics/metrics.h"
#include "driver/driver_service.h"
#include "ipam/ipam_api.h"

namespace smv::daemon {

// One entry per pool the IPAM holds, named by the short ids of the networks on its subnet (ids,
// not names: the driver is never told a network's name). A removed network's pool kept for its
// names has no gauges.
std::vector<metrics::PoolGauges> PoolGaugesNow(driver::DriverService& driver, const ipam::IpamApi& ipam);

}  // namespace smv::daemon
