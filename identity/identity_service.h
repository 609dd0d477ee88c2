#pragma once
// Which container is a call for? Docker >= 29 says so in RequestAddress; older engines do not
// (docs/plugin-protocol.md, "Calls"). This service learns names where they can be
// learned without blocking dockerd, and keeps reservations alive and tidy:
//   * at Join, from GET /networks/<id> (the endpoint is listed with its name from Join on);
//   * at RequestAddress on old engines, best effort within a small budget: the requested
//     address, a MAC seen before with a name, or the single starting candidate;
//   * after a background pass (daemon/reconciler.h) found the engine answering again: names of
//     endpoints that joined while it did not (dockerd start-up).
// A swarm task's name is reserved as <service>.<slot> (identity/swarm_name.h), told by its labels.
// Handlers never call the engine while it is known not to answer.

#include <atomic>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/status.h"
#include "driver/driver_service.h"
#include "engine/engine_api.h"
#include "ipam/ipam_api.h"

namespace smv::identity {

using engine::EngineApi;
using engine::EngineContainer;
using engine::EngineEndpoint;
using engine::EngineNetwork;
using engine::Millis;

// Whom a RequestAddress without a name is for, as far as an older engine lets it be told.
struct Guess {
  std::string name;  // the one container asking, or ""
  // Tasks of one swarm service starting together: their reservation names (the requester is one
  // of them). See ipam::AddressRequest::share_names.
  std::vector<std::string> start_group;
};

struct IdentityOptions {
  // Engine time a RequestAddress may spend guessing (plus one busy_ping when a call fails). It
  // delays the container's start, and dockerd asks for one network's addresses one at a time.
  // With ten tasks starting on a host of 2 cores (three dockerds, three etcd members), the
  // container list took up to 1.02 s.
  Millis request_budget{2000};
  Millis inspect_wait{150};    // how long a candidate's inspect may take to count as idle
  Millis join_timeout{500};    // GET /networks/<id> at Join
  Millis busy_ping{250};       // after a failed call: a ping that tells a busy engine from a silent one
  Millis probe_every{1000};    // while no pass has heard from the engine: one handler's ping this often
  Millis learn_timeout{3000};  // GET /networks/<id> when learning pending names
};

class IdentityService {
 public:
  using Clock = std::function<int64_t()>;  // unix seconds
  IdentityService(EngineApi& engine, ipam::IpamApi& ipam, driver::DriverService& driver, IdentityOptions options = {},
                  Clock clock = nullptr);

  // The best-effort name of the container a RequestAddress without a name is for, or its start
  // group, or neither.
  Guess GuessRequester(const ipam::AddressCall& call);

  // The name a RequestAddress that carries `name` (Docker >= 29) is reserved under: `name` itself,
  // without an engine call, unless it has a swarm task's shape; then the container's labels tell
  // (one engine call within the request budget, answered with that task's container only).
  // `name` when the engine does not answer.
  std::string ReservationNameOf(const std::string& name);

  // Says on `call` whom a RequestAddress is for. No name (Docker < 29): the guess, as a hint. A
  // plain name (Docker >= 29): used as it is. A name shaped like a swarm task's: its slot becomes
  // a hint, never the call's name. A slot is not one container: two live tasks of one slot (a
  // start-first update, an old task still stopping) must not be taken for one asking twice, and
  // a task whose labels cannot be read now must not get a reservation under its task id. The
  // slot's reserved address is taken when free, else a free one (the task drifts); Join names
  // the lease.
  void IdentifyRequester(ipam::AddressCall& call);

  // After the driver's Join: learns the endpoint's container name and ties it to the address.
  // Fails (kFailedPrecondition) only when the address is reserved for another name. When the
  // engine does not answer the name is learned later in the background.
  Status LearnAtJoin(const std::string& network_id, const std::string& endpoint_id);

  // Whether the background pass's ping was answered (the pass tells, and a handler whose call
  // failed and whose ping was not answered); handlers call the engine only while it is, or after
  // a ping of their own (EngineAnswers). Starts false: the first pass tells. A pass's answer
  // does not reset the handlers' failures in a row: its list may take 3 s, theirs must answer
  // within their budget, and only their own success tells that it does again.
  void NoteEngineAnswered(bool answered) { healthy_ = answered; }
  // Learns the names of joined endpoints that have none yet (they joined while the engine did
  // not answer) and ties them to their addresses. Returns how many were learned.
  int LearnPendingNames();

  bool engine_healthy() const { return healthy_.load(); }
  // Calls failed in a row with the engine still answering a ping: at this many, it counts as
  // silent until a pass hears it (a failure whose ping is not answered is not counted).
  static constexpr int kFailuresOfABusyEngine = 3;

 private:
  // More starting containers than this on one network cannot be told apart in the budget.
  static constexpr size_t kMaxCandidates = 8;
  // Containers inspected at most, exited swarm tasks of those names included.
  static constexpr size_t kMaxInspects = 48;
  // The one container that asked for `address` on the network, or "".
  static std::string RequesterOfAddress(const std::vector<EngineContainer>& containers, const std::string& network_name,
                                        const std::string& address);
  // Whether `c` may be a container of network `network_name` asking for its address: not a
  // finished task, on the network, no endpoint yet, no requested address.
  static bool MayAskOn(const EngineContainer& c, const std::string& network_name);
  // The reservation names of the containers that may ask on `network_name` (MayAskOn): with none
  // of them reserved, StartingCandidate's answer is none whatever the network's endpoints are.
  static std::set<std::string> PossibleAskers(const std::vector<EngineContainer>& containers,
                                              const std::string& network_name);
  // The one container of the network that is starting without an address and has a
  // reservation here; or, when tasks of one swarm service start together, their group.
  // `reserved_askers`: names found to hold a reservation before the inspect, or null.
  Guess StartingCandidate(const ipam::AddressCall& call, const std::vector<EngineContainer>& containers,
                          const EngineNetwork& network, SteadyClock::time_point deadline,
                          const std::set<std::string>* reserved_askers);
  // The reservation name of the container `name` (ReservationName). A name of a swarm task's
  // shape asks the engine for the containers labelled with its task id only (not the host's
  // whole list). Fails when the engine does not answer.
  Result<std::string> ResolveName(const std::string& name, Millis timeout);
  // The same, read from containers already listed: the one named exactly `name`, else `name`.
  static std::string ResolveNameIn(const std::string& name, const std::vector<EngineContainer>& listed);
  Status AttachEndpointName(const driver::EndpointRecord& endpoint, const std::string& name);
  // The guess's engine part; `listed` tells whether it listed the host's containers.
  Guess GuessFromEngine(const ipam::AddressCall& call, uint64_t request, bool& listed);
  // Containers with a swarm task's name that the guess listed (not finished tasks), by name:
  // their id, reservation name, and the newest request whose list showed them. A task that asked
  // for its address while listed joins moments later, and its Join needs no second engine call.
  // At its Join dockerd lists the endpoint under "ep-<endpoint id>", not its container id (its
  // sandbox is not registered yet): then the name tells (a task's name holds its task id, never
  // reused by swarm), if a list showed it no more than kKnownTaskSeconds ago and since the last
  // request that listed nothing (whose container, under this name or not, was never seen), and
  // never under another id or without a task's labels. A real container id must be the listed
  // one. Bounded: cleared past kMaxKnownTasks (a clear counts as a request that listed nothing).
  uint64_t BeginRequest();  // the request's number (they grow by one)
  void NoteUnlisted(uint64_t request);
  void RememberListed(uint64_t request, const std::vector<EngineContainer>& listed);
  std::optional<std::string> KnownTask(const std::string& endpoint_id, const EngineEndpoint& endpoint);
  // Whether one of the endpoint's addresses is leased here: its RequestAddress came through
  // IdentifyRequester (a network on Docker's own IPAM, -o ipam=docker, sends none).
  bool LeasedHere(const driver::EndpointRecord& endpoint) const;
  // Network names by id, from the engine's inspects. Docker never renames a network, so a guess
  // that needs only the name (who asked for an address; whether a candidate has a reservation)
  // does not inspect it again: dockerd asks for one network's addresses one at a time, and each
  // inspect of a busy engine delayed every task starting behind it. Bounded: cleared past
  // kMaxNetworkNames.
  std::optional<std::string> NetworkNameOf(const std::string& network_id);
  void RememberNetworkName(const std::string& network_id, const EngineNetwork& network);
  static constexpr size_t kMaxNetworkNames = 256;
  std::mutex network_names_mu_;
  std::map<std::string, std::string> network_names_;
  static constexpr size_t kMaxKnownTasks = 1024;
  static constexpr int64_t kKnownTaskSeconds = 30;
  struct KnownTaskEntry {
    std::string container_id;      // the first listed under this name
    std::string reservation_name;  // "" when that one was no swarm task
    bool ambiguous = false;        // listed under another id too
    uint64_t seen_by = 0;          // the newest request whose list showed it
    int64_t listed_at = 0;         // unix seconds
  };
  std::mutex known_mu_;
  std::map<std::string, KnownTaskEntry> known_tasks_;  // by container name
  uint64_t requests_ = 0;                              // the last request's number
  uint64_t unlisted_ = 0;                              // the newest request that listed nothing
  EngineApi& engine_;
  ipam::IpamApi& ipam_;
  driver::DriverService& driver_;
  IdentityOptions options_;
  Clock clock_;
  // A call of a handler to the engine failed (`why`). While dockerd starts, its API accepts and
  // answers nothing, and every handler would wait out its budget: they stop calling until a
  // background pass hears from it. An engine busy starting many containers answers slowly but
  // answers a ping: the handlers go on calling it, unless its calls keep failing.
  void NoteEngineFailed(const Status& why);
  // Whether a handler may call the engine. While no pass has heard from it (dockerd starting, or
  // this plugin started before it), one handler per probe_every pings it (busy_ping): a container
  // run the moment dockerd's API answers is named at its Join, not at the next pass (5 s later).
  // Not after calls that kept failing with the ping answered: those wait for a pass.
  bool EngineAnswers();
  std::mutex probe_mu_;
  SteadyClock::time_point next_probe_{};
  std::atomic<bool> healthy_{false};  // handlers may call the engine (NoteEngineAnswered, NoteEngineFailed)
  std::atomic<int> failed_in_a_row_{0};
};

}  // namespace smv::identity
