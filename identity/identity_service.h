#pragma once
// Which container is a call for? Docker >= 29 says so in RequestAddress; older engines do not
// (shared/docs/dockerd-plugin-protocol.md §8). This service learns names where they can be
// learned without blocking dockerd, and keeps reservations alive and tidy:
//   * at Join, from GET /networks/<id> (the endpoint is listed with its name from Join on);
//   * at RequestAddress on old engines, best effort within a small budget: the requested
//     address, a MAC seen before with a name, or the single starting candidate;
//   * in the background, once the engine answers: names of endpoints learned while it did not
//     (dockerd start-up), and reservation lifetime (release_after once a name is gone).
// Handlers never call the engine while it is known not to answer.

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <string>
#include <functional>
#include <thread>

#include "common/status.h"
#include "driver/driver_service.h"
#include "identity/engine_api.h"
#include "ipam/ipam_service.h"

namespace smv::identity {

struct IdentityOptions {
  Millis request_budget{400};      // total engine time a RequestAddress may spend guessing
  Millis inspect_wait{150};        // how long a candidate's inspect may take to count as idle
  Millis join_timeout{500};        // GET /networks/<id> at Join
  Millis reconcile_interval{5000};  // background pass
  // An endpoint the engine has not listed for this long is a lost teardown (dockerd removed the
  // container while the plugin was down). Covers the gap between CreateEndpoint and Join.
  std::chrono::seconds stale_after{60};
};

class IdentityService {
 public:
  using Clock = std::function<int64_t()>;  // unix seconds
  IdentityService(EngineApi& engine, ipam::IpamService& ipam, driver::DriverService& driver,
                  IdentityOptions options = {}, Clock clock = nullptr);
  ~IdentityService();

  // The best-effort name of the container a RequestAddress without a name is for, or "".
  std::string GuessRequester(const ipam::AddressCall& call);

  // After the driver's Join: learns the endpoint's container name and ties it to the address.
  // Fails (kFailedPrecondition) only when the address is reserved for another name. When the
  // engine does not answer the name is learned later in the background.
  Status LearnAtJoin(const std::string& network_id, const std::string& endpoint_id);

  // One background pass; returns a summary for logs and tests.
  struct PassReport {
    bool engine_answered = false;
    int names_learned = 0;
    int reservations_released = 0;
    int endpoints_cleaned = 0;  // lost DeleteEndpoint/ReleaseAddress made up for
    int networks_cleaned = 0;   // lost DeleteNetwork/ReleasePool made up for
  };
  PassReport ReconcileOnce();

  void StartBackground();
  void StopBackground();
  bool engine_healthy() const { return healthy_.load(); }

 private:
  Status AttachEndpointName(const driver::EndpointRecord& endpoint, const std::string& name);
  // Teardown dockerd did while the plugin was down: what the engine no longer knows is removed
  // (links, leases, network records, pools); reservations stay.
  void CleanLostTeardown(PassReport& report);

  EngineApi& engine_;
  ipam::IpamService& ipam_;
  driver::DriverService& driver_;
  IdentityOptions options_;
  Clock clock_;
  std::atomic<bool> healthy_{false};  // the engine answered its last call
  std::mutex mu_;                     // guards stop_ (with cv_)
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread worker_;
};

}  // namespace smv::identity
