#pragma once
// What the reservations CLI asks of the daemon (ls, reserve, release, release --node), on the
// services' plain values: the HTTP edge only decodes and encodes around these.

#include <string>
#include <utility>
#include <vector>

#include "common/ip.h"
#include "common/status.h"
#include "driver/driver_service.h"
#include "engine/engine_api.h"
#include "ipam/ipam_api.h"

namespace smv::daemon {

class ReservationCommands {
 public:
  // `engine` may be null (no engine API: networks are named by id or id prefix only). Every
  // reference must outlive this object.
  ReservationCommands(driver::DriverService& driver, ipam::IpamApi& ipam, engine::EngineApi* engine = nullptr)
      : driver_(driver), ipam_(ipam), engine_(engine) {}
  // The engine's address (serve --docker-host), named when it cannot be asked for a network's name.
  void SetEngineAddress(std::string docker_host) { engine_address_ = std::move(docker_host); }

  // The reservations of `network` (name, id or id prefix), or every one when it is "".
  Result<std::vector<ipam::ReservationView>> List(const std::string& network);
  // Reserves `address` for container `name` in the pool of `network` holding it; returns the pool id.
  Result<std::string> Reserve(const std::string& name, const std::string& address, const std::string& network);
  // Releases the reservations of a name or an address; kNotFound when there is none.
  Result<int> Release(const std::string& name_or_address);
  // Frees every address a node of a shared book holds; returns how many.
  Result<int> ReleaseNode(const std::string& node);

  // Subnets of a Docker network given by name, id or id prefix. kUnavailable when only the engine
  // could tell what a name is and it does not answer.
  Result<std::vector<Prefix>> NetworkSubnets(const std::string& network);

 private:
  driver::DriverService& driver_;
  ipam::IpamApi& ipam_;
  engine::EngineApi* engine_;
  std::string engine_address_;
};

}  // namespace smv::daemon
