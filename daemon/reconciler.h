#pragma once
// The one owner of every cleanup that crosses services: "an endpoint or network is gone, so
// release its leases or pools". Three situations lead there:
//   * at start-up, the driver finds endpoints whose link is back in the host (a crash mid-Join,
//     or the plugin down at a stop): their addresses are freed;
//   * in the background, dockerd removed containers or networks while the plugin was down
//     (lost teardown): what the engine no longer knows is removed (links, leases, network
//     records, pools); reservations stay;
//   * reservation lifetime: names no container carries any more age out (release_after).
// The background pass also lets IdentityService learn names missed while the engine was down.
// Its counterpart for creation is NetworkCreation (network_creation.h).

#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <stop_token>
#include <thread>

#include "common/clock.h"
#include "driver/driver_service.h"
#include "engine/engine_api.h"
#include "identity/identity_service.h"
#include "ipam/ipam_api.h"

namespace smv::daemon {

struct ReconcilerOptions {
  Millis interval{5000};        // between background passes while the engine answers
  Millis retry_interval{1000};  // while its list is not answered (dockerd starting, or busy)
  // The pass's ping while the last one was answered (a busy engine's took 0.6 s beside a CI
  // run), and while it was not (dockerd starting: a stop of the daemon waits for it).
  Millis ping_timeout{2000};
  Millis silent_ping_timeout{500};
  Millis list_timeout{3000};  // container list and network inspects of a pass
  // An endpoint the engine has not listed for this long is a lost teardown (dockerd removed the
  // container while the plugin was down). Covers the gap between CreateEndpoint and Join.
  // A network must be unknown to the engine for this long too: dockerd calls CreateNetwork
  // before it stores the network, so an inspect in that gap says "no such network".
  std::chrono::seconds stale_after{60};
  // Reservation lifetime (names no container carries age out). A book shared by hosts ages
  // nothing out itself (IpamService::ApplyPresence; SplitIpam asks only the local book).
  bool apply_presence = true;
};

// A network with -o host_ip holds that address in the IPAM (so no container gets it): freed when
// the network goes, whether dockerd removed it or the reconciler found it gone.
void ReleaseHostAddress(ipam::IpamApi& ipam, const driver::NetworkRecord& network);

class Reconciler {
 public:
  using Clock = std::function<int64_t()>;  // unix seconds

  // Every reference must outlive the reconciler.
  Reconciler(engine::EngineApi& engine, ipam::IpamApi& ipam, driver::DriverService& driver,
             identity::IdentityService& identity, ReconcilerOptions options = {}, Clock clock = nullptr);
  ~Reconciler();

  // Before the socket opens: the driver reconciles the kernel with its store, then the
  // addresses of the endpoints it tore down are freed.
  driver::ReconcileReport AtStart();

  // One background pass; returns a summary for logs and tests.
  struct PassReport {
    bool engine_answered = false;
    int names_learned = 0;
    int reservations_released = 0;
    int endpoints_cleaned = 0;     // lost DeleteEndpoint/ReleaseAddress made up for
    int networks_cleaned = 0;      // lost DeleteNetwork/ReleasePool made up for
    int addresses_retaken = 0;     // freed in the shared book behind this host's back, taken again
    int addresses_given_away = 0;  // freed behind its back and now another's (not again once acted on)
    int links_deleted = 0;         // container interfaces deleted for such an address (once each)
  };
  PassReport PassOnce();

  void StartBackground();
  void StopBackground();  // idempotent

 private:
  // The engine's view of each stored network; absent: unsure (leave it alone), nullopt: gone.
  using EngineView = std::map<std::string, std::optional<engine::EngineNetwork>>;
  EngineView InspectStoredNetworks();
  void CleanLostEndpoints(const EngineView& view, PassReport& report);
  void CleanLostNetworks(const EngineView& view, PassReport& report);
  // The cross-service halves: free what the IPAM still holds for a removed endpoint or network.
  void ReleaseEndpointLeases(const driver::EndpointRecord& endpoint);
  void ReleaseNetworkPools(const driver::NetworkRecord& network);
  // A shared book may have freed this host's addresses (`reservations release --node` while it
  // was only cut off): each running container's address is taken again, or, given away, the
  // container's interface carrying it is deleted (once it succeeds; an error is logged once and
  // tried again every pass).
  void KeepRunningAddresses(PassReport& report);
  void NoteEngineAnswered(const Status& pinged, const Status& answered);
  // Deletes the container's interface carrying a given-away address; whether the outcome is final
  // (deleted, none to delete, the container left): false after an error, tried again next pass.
  bool DeleteGivenAwayLink(const driver::EndpointRecord& endpoint, const IpAddress& address, const std::string& holder,
                           PassReport& report);
  // Logs a failed deletion (once per endpoint and address, not every pass); true when the
  // container left meanwhile (nothing to delete: final).
  bool NoteFailedDeletion(const driver::EndpointRecord& endpoint, const IpAddress& address, const std::string& what,
                          const Status& error, const std::string& fix);

  engine::EngineApi& engine_;
  ipam::IpamApi& ipam_;
  bool address_book_current_ = true;  // the last CatchUp succeeded (pass thread only)
  bool engine_answering_ = true;      // the last pass's engine call was answered (pass thread only)
  bool engine_pinged_ = true;         // the last pass's ping was answered (pass thread only)
  driver::DriverService& driver_;
  identity::IdentityService& identity_;
  ReconcilerOptions options_;
  Clock clock_;
  // When each stored network was first found unknown to the engine, in this run (reset when the
  // engine knows it again; a restart only delays a cleanup).
  std::map<std::string, int64_t> network_unknown_since_;
  // "<endpoint id> <address>" of given-away addresses already acted on (pass thread only): once
  // each, not every pass; forgotten when the endpoint goes (not asked again).
  std::set<std::string> given_away_handled_;
  // Keys whose link deletion failed and was logged: tried again every pass, logged once.
  std::set<std::string> deletion_failures_logged_;
  // Endpoints whose container interface this reconciler deleted (a dual-stack endpoint's second
  // address needs no deletion); forgotten when the endpoint goes.
  std::set<std::string> links_deleted_;
  std::mutex wait_mu_;  // only for wake_'s wait between passes
  std::condition_variable_any wake_;
  std::jthread worker_;  // StopBackground (or destruction) requests its stop and joins
};

}  // namespace smv::daemon
