// Making the service: its store mirror loads memory and replays the journal. The verbs are in
// pools_and_addresses.cc and names_and_reservations.cc; how a change becomes durable is the
// store mirror's (store_mirror.cc).
#include "ipam/ipam_service.h"

#include "common/clock.h"

namespace smv::ipam {

Result<std::unique_ptr<IpamService>> IpamService::Create(IpamStore& store, Clock clock, ReleaseJournal* journal) {
  std::unique_ptr<IpamService> service(new IpamService(store, clock ? std::move(clock) : UnixSeconds, journal));
  SMV_RETURN_IF_ERROR(service->mirror_.Start());
  return service;
}

Status IpamService::CatchUp() { return mirror_.CatchUp(); }

}  // namespace smv::ipam
