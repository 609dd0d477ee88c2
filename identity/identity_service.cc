#include "identity/identity_service.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <future>
#include <set>

#include "common/clock.h"
#include "common/log.h"
#include "identity/swarm_name.h"

namespace smv::identity {
namespace {

// A swarm task's container that ran and ended: swarm never starts it again (a new task is a new
// container), so it cannot be the one asking. Its history (5 per slot by default) would otherwise
// fill the candidates: 30 replicas over 3 nodes listed 50 exited tasks per node, past the inspect
// limit, and every slot moved on each update.
bool IsFinishedSwarmTask(const EngineContainer& c) {
  return c.labels.contains(kSwarmTaskIdLabel) && (c.state == "exited" || c.state == "dead");
}

// The reservation names of `containers` when all are tasks of one swarm service and there are
// two or more slots among them; {} otherwise. Sorted: every task of the group shares out in one
// order.
std::vector<std::string> StartGroup(const std::vector<const EngineContainer*>& containers) {
  std::set<std::string> slots;
  std::string service;
  for (const EngineContainer* c : containers) {
    auto label = c->labels.find(kSwarmServiceLabel);
    if (label == c->labels.end() || label->second.empty() || !c->labels.contains(kSwarmTaskIdLabel)) return {};
    if (!service.empty() && label->second != service) return {};
    service = label->second;
    const std::string slot = ReservationName(c->name, c->labels);
    if (slot == c->name) return {};  // not a name swarm gave
    slots.insert(slot);
  }
  if (slots.size() < 2) return {};
  return {slots.begin(), slots.end()};
}

}  // namespace

IdentityService::IdentityService(EngineApi& engine, ipam::IpamApi& ipam, driver::DriverService& driver,
                                 IdentityOptions options, Clock clock)
    : engine_(engine), ipam_(ipam), driver_(driver), options_(options), clock_(std::move(clock)) {
  if (!clock_) clock_ = UnixSeconds;
}

std::string IdentityService::RequesterOfAddress(const std::vector<EngineContainer>& containers,
                                                const std::string& network_name, const std::string& address) {
  std::string found;
  int matches = 0;
  for (const EngineContainer& c : containers) {
    auto n = c.networks.find(network_name);
    if (n != c.networks.end() && n->second.ipam_v4 == address) {
      found = ReservationName(c.name, c.labels);
      ++matches;
    }
  }
  return matches == 1 ? found : "";
}

bool IdentityService::MayAskOn(const EngineContainer& c, const std::string& network_name) {
  if (IsFinishedSwarmTask(c)) return false;
  auto n = c.networks.find(network_name);
  return n != c.networks.end() && n->second.endpoint_id.empty() && n->second.ipam_v4.empty();
}

std::set<std::string> IdentityService::PossibleAskers(const std::vector<EngineContainer>& containers,
                                                      const std::string& network_name) {
  std::set<std::string> names;
  for (const EngineContainer& c : containers) {
    if (MayAskOn(c, network_name)) names.insert(ReservationName(c.name, c.labels));
  }
  return names;
}

Guess IdentityService::StartingCandidate(const ipam::AddressCall& call, const std::vector<EngineContainer>& containers,
                                         const EngineNetwork& network, SteadyClock::time_point deadline,
                                         const std::set<std::string>* reserved_askers) {
  // On this network, no endpoint yet, no requested address, not already past CreateEndpoint, and
  // busy starting (its inspect does not answer).
  std::vector<const EngineContainer*> candidates;
  for (const EngineContainer& c : containers) {
    if (!MayAskOn(c, network.name)) continue;
    bool past_create = false;
    for (const EngineEndpoint& e : network.endpoints) past_create = past_create || e.name == c.name;
    if (!past_create) candidates.push_back(&c);
  }
  // Swarm keeps a slot's earlier tasks listed (task history, 5 by default), without an endpoint.
  // The exited ones are skipped above; one that never ran (refused at its start, listed as
  // "created") counts once, under its slot's name, and answers its inspect at once, so it never
  // joins a start group either. Tasks of one service need not be told apart (they may form a
  // start group): the slot limit does not apply to them.
  std::set<std::string> slot_names;
  for (const EngineContainer* c : candidates) slot_names.insert(ReservationName(c->name, c->labels));
  const bool tasks_of_one_service = !StartGroup(candidates).empty();
  if (candidates.empty() || (slot_names.size() > kMaxCandidates && !tasks_of_one_service) ||
      candidates.size() > kMaxInspects) {
    return {};
  }
  // Only a name with a reservation here can change the answer; without one, do not spend the
  // time an inspect of a starting container takes to time out.
  // Asked already when these are the names asked about before the inspect (none dropped since).
  const bool asked = reserved_askers != nullptr && *reserved_askers == slot_names;
  if (!asked && !ipam_.AnyReserved(call.pool_id, {slot_names.begin(), slot_names.end()})) return {};
  // An idle container answers its inspect in milliseconds; only a starting one blocks. With less
  // time left than that, an idle one would look starting: no guess.
  if (TimeLeft(deadline) < options_.inspect_wait) return {};
  const Millis wait = options_.inspect_wait;
  std::vector<std::future<bool>> answers;
  for (const EngineContainer* c : candidates) {
    answers.push_back(
        std::async(std::launch::async, [this, id = c->id, wait] { return engine_.InspectAnswers(id, wait); }));
  }
  std::vector<std::string> starting;
  std::vector<const EngineContainer*> starting_containers;
  for (size_t i = 0; i < candidates.size(); ++i) {
    if (answers[i].get()) continue;
    starting.push_back(ReservationName(candidates[i]->name, candidates[i]->labels));
    starting_containers.push_back(candidates[i]);
  }
  if (starting.size() == 1) return {.name = starting.front()};
  if (std::vector<std::string> group = StartGroup(starting_containers); !group.empty()) {
    return {.start_group = std::move(group)};
  }
  if (!starting.empty()) {
    // Visible where users look: these names may come back on an address reserved for none of them.
    std::string names;
    for (const std::string& n : starting) names += (names.empty() ? "" : ", ") + n;
    spdlog::warn(
        "ambiguous start in pool \"{}\": {} containers without a requested address start at once ({}); the "
        "engine does not say which asks, so this one gets an address reserved for none of them. Give each "
        "--ip / ipv4_address, or for a compose project run: static-macvlan compose pin -p PROJECT",
        call.pool_id, starting.size(), names);
  }
  return {};
}

Guess IdentityService::GuessRequester(const ipam::AddressCall& call) {
  if (!call.name.empty() || call.gateway) return {};
  const uint64_t request = BeginRequest();
  bool listed = false;
  Guess guess = GuessFromEngine(call, request, listed);
  if (!listed) NoteUnlisted(request);
  return guess;
}

Guess IdentityService::GuessFromEngine(const ipam::AddressCall& call, uint64_t request, bool& listed) {
  const SteadyClock::time_point deadline = SteadyClock::now() + options_.request_budget;
  std::optional<ipam::PoolConfig> pool = ipam_.FindPool(call.pool_id);
  if (!pool) return {};
  const std::vector<std::string> network_ids = driver_.NetworksOnSubnet(pool->subnet);
  if (network_ids.empty()) return {};  // network create itself (gateway, --aux-address)

  // 2. A fixed --mac-address seen before with a name (no engine call needed). dockerd's own
  // MACs are random on every start and never match.
  if (call.address.empty()) {
    if (std::string by_mac = ipam_.NameForMac(call.pool_id, call.mac); !by_mac.empty()) return {.name = by_mac};
  }
  if (!EngineAnswers()) return {};
  Result<std::vector<EngineContainer>> containers = engine_.ListContainers(TimeLeft(deadline));
  if (!containers.ok()) {
    NoteEngineFailed(containers.status());
    return {};
  }
  failed_in_a_row_ = 0;
  RememberListed(request, *containers);
  listed = true;
  // Inspected after the list, never before: an endpoint created meanwhile shows in the inspect,
  // so its container is no candidate.
  for (const std::string& network_id : network_ids) {
    if (TimeLeft(deadline) <= Millis(0)) return {};        // the budget ran out: not the engine's failure
    std::optional<std::set<std::string>> reserved_askers;  // before the inspect, some hold a reservation
    if (std::optional<std::string> name = NetworkNameOf(network_id)) {
      // What the name alone answers. The askers here are StartingCandidate's candidates before
      // the inspect drops the ones past CreateEndpoint: none reserved here, none reserved there.
      if (!call.address.empty()) {
        if (std::string asked = RequesterOfAddress(*containers, *name, call.address); !asked.empty()) {
          return {.name = asked};
        }
        continue;
      }
      // More than could be inspected: asked after the inspect, as before (StartingCandidate).
      if (std::set<std::string> askers = PossibleAskers(*containers, *name); askers.size() <= kMaxInspects) {
        if (askers.empty() || !ipam_.AnyReserved(call.pool_id, {askers.begin(), askers.end()})) continue;
        reserved_askers = std::move(askers);
      }
    }
    Result<EngineNetwork> network = engine_.InspectNetwork(network_id, TimeLeft(deadline));
    if (!network.ok()) {
      if (network.status().code() != Code::kNotFound) NoteEngineFailed(network.status());
      continue;
    }
    RememberNetworkName(network_id, *network);
    // 1. The requested address: the one container that asked for it. 3. The single candidate.
    Guess guess = call.address.empty() ? StartingCandidate(call, *containers, *network, deadline,
                                                           reserved_askers ? &*reserved_askers : nullptr)
                                       : Guess{.name = RequesterOfAddress(*containers, network->name, call.address)};
    if (!guess.name.empty() || !guess.start_group.empty()) return guess;
  }
  return {};
}

std::string IdentityService::ReservationNameOf(const std::string& name) {
  if (!MayBeSwarmTaskName(name) || !EngineAnswers()) return name;
  Result<std::string> resolved = ResolveName(name, options_.request_budget);
  if (!resolved.ok()) {
    NoteEngineFailed(resolved.status());
    return name;
  }
  failed_in_a_row_ = 0;
  return *resolved;
}

void IdentityService::IdentifyRequester(ipam::AddressCall& call) {
  if (call.name.empty()) {
    Guess guess = GuessRequester(call);
    call.hint_name = std::move(guess.name);
    call.share_names = std::move(guess.start_group);
    return;
  }
  NoteUnlisted(BeginRequest());  // this container's Join is not told from a list
  if (!MayBeSwarmTaskName(call.name)) return;
  call.hint_name = ReservationNameOf(call.name);
  call.name.clear();
}

uint64_t IdentityService::BeginRequest() {
  std::scoped_lock lock(known_mu_);
  return ++requests_;
}

std::optional<std::string> IdentityService::NetworkNameOf(const std::string& network_id) {
  std::scoped_lock lock(network_names_mu_);
  auto it = network_names_.find(network_id);
  if (it == network_names_.end()) return std::nullopt;
  return it->second;
}

void IdentityService::RememberNetworkName(const std::string& network_id, const EngineNetwork& network) {
  if (network.name.empty()) return;
  std::scoped_lock lock(network_names_mu_);
  if (network_names_.size() >= kMaxNetworkNames && !network_names_.contains(network_id)) network_names_.clear();
  network_names_[network_id] = network.name;
}

void IdentityService::NoteUnlisted(uint64_t request) {
  std::scoped_lock lock(known_mu_);
  unlisted_ = std::max(unlisted_, request);
}

void IdentityService::RememberListed(uint64_t request, const std::vector<EngineContainer>& listed) {
  const int64_t now = clock_();
  std::scoped_lock lock(known_mu_);
  for (const EngineContainer& c : listed) {
    if (!MayBeSwarmTaskName(c.name)) continue;  // no task's name: no Join this map could answer
    if (IsFinishedSwarmTask(c)) continue;       // never joins again; its history would crowd the starting ones out
    const bool task = c.labels.contains(kSwarmTaskIdLabel);
    if (known_tasks_.size() >= kMaxKnownTasks && !known_tasks_.contains(c.name)) {
      known_tasks_.clear();
      // The ambiguities are gone with it: a list older than now (slow, still to come) must not
      // make a clean entry for a container since replaced.
      unlisted_ = std::max(unlisted_, requests_);
    }
    auto [it, fresh] = known_tasks_.try_emplace(c.name);
    KnownTaskEntry& entry = it->second;
    if (fresh) {
      entry.container_id = c.id;
      entry.reservation_name = task ? ReservationName(c.name, c.labels) : "";
    }
    if (entry.container_id != c.id) entry.ambiguous = true;  // another container under this name
    entry.seen_by = std::max(entry.seen_by, request);
    entry.listed_at = std::max(entry.listed_at, now);
  }
}

std::optional<std::string> IdentityService::KnownTask(const std::string& endpoint_id, const EngineEndpoint& endpoint) {
  std::scoped_lock lock(known_mu_);
  auto it = known_tasks_.find(endpoint.name);
  if (it == known_tasks_.end()) return std::nullopt;
  KnownTaskEntry entry = std::move(it->second);
  known_tasks_.erase(it);  // one Join per task's container
  if (entry.ambiguous || entry.reservation_name.empty()) return std::nullopt;
  bool same_container = false;
  if (endpoint.container_id == "ep-" + endpoint_id) {
    // No container id: the name tells, if listed since the last request that listed nothing
    // (that one's container, maybe under this name, was never seen) and lately.
    const int64_t age = clock_() - entry.listed_at;
    same_container = entry.seen_by > unlisted_ && age >= 0 && age <= kKnownTaskSeconds;
  } else {
    same_container = !endpoint.container_id.empty() && endpoint.container_id == entry.container_id;
  }
  if (!same_container) return std::nullopt;
  return entry.reservation_name;
}

Result<std::string> IdentityService::ResolveName(const std::string& name, Millis timeout) {
  if (!MayBeSwarmTaskName(name)) return name;
  // Only the containers labelled with the task id the name ends in: one container on a busy
  // host, not all of them. Its name is checked exactly in ResolveNameIn.
  Result<std::vector<EngineContainer>> task =
      engine_.ListContainersLabelled(kSwarmTaskIdLabel, SwarmTaskIdOf(name), timeout);
  if (!task.ok()) return task.status();
  return ResolveNameIn(name, *task);
}

std::string IdentityService::ResolveNameIn(const std::string& name, const std::vector<EngineContainer>& listed) {
  if (!MayBeSwarmTaskName(name)) return name;
  for (const EngineContainer& c : listed) {
    if (c.name == name) return ReservationName(c.name, c.labels);
  }
  return name;
}

bool IdentityService::LeasedHere(const driver::EndpointRecord& endpoint) const {
  return std::ranges::any_of(endpoint.Addresses(),
                             [this](const Prefix& a) { return !ipam_.PoolsLeasing(a.address()).empty(); });
}

Status IdentityService::AttachEndpointName(const driver::EndpointRecord& endpoint, const std::string& name) {
  for (const Prefix& address : endpoint.Addresses()) {
    for (const std::string& pool : ipam_.PoolsLeasing(address.address())) {
      Result<ipam::AttachOutcome> outcome = ipam_.AttachName(pool, address.address(), name, endpoint.mac);
      if (!outcome.ok()) return outcome.status();
    }
  }
  return driver_.SetEndpointName(endpoint.endpoint_id, name);
}

Status IdentityService::LearnAtJoin(const std::string& network_id, const std::string& endpoint_id) {
  std::optional<driver::EndpointRecord> endpoint = driver_.FindEndpoint(endpoint_id);
  if (!endpoint) return OkStatus();
  if (!EngineAnswers()) {
    spdlog::debug("endpoint {}: engine not answering, name learned later", ShortId(endpoint_id));
    return OkStatus();
  }
  Result<EngineNetwork> network = engine_.InspectNetwork(network_id, options_.join_timeout);
  if (network.ok()) {
    failed_in_a_row_ = 0;
    RememberNetworkName(network_id, *network);
  }
  if (!network.ok()) {
    NoteEngineFailed(network.status());
    spdlog::info("{}; this name is learned in the background", network.status().message());
    return OkStatus();
  }
  for (const EngineEndpoint& e : network->endpoints) {
    if (e.endpoint_id != endpoint_id || e.name.empty()) continue;
    std::optional<std::string> known = LeasedHere(*endpoint) ? KnownTask(endpoint_id, e) : std::nullopt;
    Result<std::string> name = known ? Result<std::string>(*known) : ResolveName(e.name, options_.join_timeout);
    if (!name.ok()) {  // a swarm task's slot is told by its labels: learned in the background
      NoteEngineFailed(name.status());
      spdlog::info("{}; this name is learned in the background", name.status().message());
      return OkStatus();
    }
    spdlog::info("endpoint {} is container {}{}", ShortId(endpoint_id), e.name,
                 *name == e.name ? "" : fmt::format(" (reserved as {})", *name));
    return AttachEndpointName(*endpoint, *name);
  }
  return OkStatus();
}

bool IdentityService::EngineAnswers() {
  if (healthy_.load()) return true;
  // Calls that kept failing while the engine answered pings: only a background pass turns them on.
  if (failed_in_a_row_.load() >= kFailuresOfABusyEngine) return false;
  {
    std::scoped_lock lock(probe_mu_);
    const SteadyClock::time_point now = SteadyClock::now();
    if (now < next_probe_) return false;
    next_probe_ = now + options_.probe_every;
  }
  // The fleet e2e ran `docker run web` on two hosts within a second of their dockerds coming up:
  // neither Join learned the name, so the second was not refused (one name on two hosts).
  if (!engine_.Ping(options_.busy_ping).ok()) return false;
  // Other handlers' calls may have failed meanwhile, making a busy engine: that waits for a pass.
  if (failed_in_a_row_.load() >= kFailuresOfABusyEngine) return false;
  healthy_ = true;
  spdlog::info("the Docker engine answers a ping: names are learned at Join again");
  return true;
}

void IdentityService::NoteEngineFailed(const Status& why) {
  // The full-size swarm run lost three slots' addresses to one container list that took 410 ms
  // while ten tasks started on the host: the handlers after it stopped asking until the next pass.
  if (!engine_.Ping(options_.busy_ping).ok()) {
    // Silent, not busy (dockerd restarting): not counted toward a busy engine, so a handler's
    // probe may hear it again as soon as it answers (EngineAnswers).
    healthy_ = false;
    return;
  }
  if (failed_in_a_row_.fetch_add(1) + 1 < kFailuresOfABusyEngine) {
    spdlog::info("{}; the engine answers a ping (busy): still asked", why.message());
    return;
  }
  healthy_ = false;  // kept failing while it answers pings: until a pass hears it
}

int IdentityService::LearnPendingNames() {
  int learned = 0;
  std::map<std::string, std::optional<EngineNetwork>> networks;  // inspected once per pass
  // Listed at most once per pass, when a name may be a swarm task's: after an engine outage
  // many may wait, and one list answers them all.
  std::optional<std::vector<EngineContainer>> listed;
  for (const driver::EndpointRecord& endpoint : driver_.Endpoints()) {
    if (!endpoint.container_name.empty() || endpoint.sandbox_key.empty()) continue;
    auto [it, fresh] = networks.try_emplace(endpoint.network_id);
    if (fresh) {
      Result<EngineNetwork> n = engine_.InspectNetwork(endpoint.network_id, options_.learn_timeout);
      if (n.ok()) {
        RememberNetworkName(endpoint.network_id, *n);
        it->second = *n;
      }
    }
    if (!it->second) continue;
    for (const EngineEndpoint& e : it->second->endpoints) {
      if (e.endpoint_id != endpoint.endpoint_id || e.name.empty()) continue;
      if (MayBeSwarmTaskName(e.name) && !listed) {
        Result<std::vector<EngineContainer>> all = engine_.ListContainers(options_.learn_timeout);
        if (!all.ok()) return learned;  // the next pass tries again
        listed = std::move(*all);
      }
      const std::string name = listed ? ResolveNameIn(e.name, *listed) : e.name;
      if (Status s = AttachEndpointName(endpoint, name); s.ok()) {
        ++learned;
      } else {
        spdlog::warn("container {}: {}", e.name, s.message());
      }
    }
  }
  return learned;
}

}  // namespace smv::identity
