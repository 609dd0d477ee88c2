#include "daemon/reconciler.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "common/log.h"
#include "identity/swarm_name.h"

namespace smv::daemon {

void ReleaseHostAddress(ipam::IpamApi& ipam, const driver::NetworkRecord& network) {
  Result<driver::NetworkOptions> options = driver::ParseNetworkOptions(network.options);
  if (!options.ok() || !options->host_ip) return;
  for (const std::string& pool : ipam.PoolsLeasing(*options->host_ip)) {
    if (Status s = ipam.ReleaseAddress(pool, options->host_ip->ToString()); !s.ok()) {
      spdlog::warn("network {}: host_ip {} not released: {}", ShortId(network.id), options->host_ip->ToString(),
                   s.message());
    }
  }
}

Reconciler::Reconciler(engine::EngineApi& engine, ipam::IpamApi& ipam, driver::DriverService& driver,
                       identity::IdentityService& identity, ReconcilerOptions options, Clock clock)
    : engine_(engine), ipam_(ipam), driver_(driver), identity_(identity), options_(options), clock_(std::move(clock)) {
  if (!clock_) clock_ = UnixSeconds;
}

Reconciler::~Reconciler() { StopBackground(); }

void Reconciler::ReleaseEndpointLeases(const driver::EndpointRecord& endpoint) {
  for (const Prefix& address : endpoint.Addresses()) {
    for (const std::string& pool : ipam_.PoolsLeasing(address.address())) {
      if (Status s = ipam_.ReleaseAddress(pool, address.address().ToString()); !s.ok()) {
        spdlog::warn("endpoint {}: address {} not released: {}", ShortId(endpoint.endpoint_id),
                     address.address().ToString(), s.message());
      }
    }
  }
}

void Reconciler::ReleaseNetworkPools(const driver::NetworkRecord& network) {
  for (const Prefix& subnet : network.Subnets()) {
    const std::vector<std::string> pools = ipam_.PoolsOnSubnet(subnet);
    if (pools.size() != 1) continue;  // none left, or ambiguous: never guess which
    if (Status s = ipam_.ReleasePool(pools.front()); !s.ok()) {
      spdlog::warn("network {}: pool {} not released: {}", ShortId(network.id), pools.front(), s.message());
    }
  }
}

void Reconciler::KeepRunningAddresses(PassReport& report) {
  std::set<std::string> still_given_away;  // handled keys to remember for the next pass
  std::set<std::string> still_failing;     // keys whose failed deletion is logged already
  // Read before the list: dockerd deletes an endpoint before it releases its address, so a
  // container that leaves after this shows as a release since, and is not given its address back.
  const uint64_t releases = ipam_.LocalReleases();
  const std::vector<driver::EndpointRecord> endpoints = driver_.Endpoints();
  std::erase_if(links_deleted_, [&](const std::string& id) {
    return std::none_of(endpoints.begin(), endpoints.end(), [&](const auto& e) { return e.endpoint_id == id; });
  });
  for (const driver::EndpointRecord& endpoint : endpoints) {
    if (endpoint.sandbox_key.empty()) continue;  // not joined: no container uses it yet
    // Its interface is gone (deleted here): nothing of it is on the wire until a restart brings a
    // new endpoint, so its addresses are not asked about again (each ask may reload the whole book).
    if (links_deleted_.contains(endpoint.endpoint_id)) continue;
    for (const std::string& cidr : {endpoint.address_v4, endpoint.address_v6}) {
      const std::optional<Prefix> address = Prefix::Parse(cidr);
      if (!address) continue;
      const std::vector<std::string> pools = ipam_.PoolsOnSubnet(Prefix(address->Network(), address->length()));
      if (pools.size() != 1) continue;
      const std::string key = endpoint.endpoint_id + " " + address->address().ToString();
      if (given_away_handled_.contains(key)) {  // acted on (no such link, stopped): not asked again either
        still_given_away.insert(key);
        continue;
      }
      Result<ipam::HeldOutcome> kept =
          ipam_.KeepHeld(pools.front(), address->address(), endpoint.container_name, endpoint.mac, releases);
      if (!kept.ok()) {  // unsure: keep what is known, decide next pass
        if (deletion_failures_logged_.contains(key)) still_failing.insert(key);
      }
      if (!kept.ok() || kept->kind == ipam::HeldOutcome::Kind::kHeld) continue;
      if (kept->kind == ipam::HeldOutcome::Kind::kRetaken) {
        ++report.addresses_retaken;
        spdlog::warn(
            "address {} of container {} had been freed in the shared book (reservations release --node?) "
            "and was still free: taken again",
            address->address().ToString(), endpoint.container_name);
        continue;
      }
      ++report.addresses_given_away;
      // Acted on once its outcome is known; a deletion that failed is tried again next pass.
      if (DeleteGivenAwayLink(endpoint, address->address(), kept->holder, report)) {
        still_given_away.insert(key);
      } else {
        still_failing.insert(key);
      }
    }
  }
  given_away_handled_ = std::move(still_given_away);  // a restarted container gets a new endpoint
  deletion_failures_logged_ = std::move(still_failing);
}

bool Reconciler::DeleteGivenAwayLink(const driver::EndpointRecord& endpoint, const IpAddress& address,
                                     const std::string& holder, PassReport& report) {
  const std::string what = fmt::format(
      "address {} of container \"{}\" (endpoint {}) was freed in the shared book while this host was cut off "
      "(reservations release --node?) and is now another's: {}",
      address.ToString(), endpoint.container_name, ShortId(endpoint.endpoint_id), holder);
  const std::string fix = fmt::format("`docker restart {}` gives it a new interface and makes it request an address",
                                      endpoint.container_name);
  // A dual-stack endpoint has one interface: deleted for its other address, it carries neither.
  if (links_deleted_.contains(endpoint.endpoint_id)) {
    spdlog::warn("{}; its interface in the container is deleted already (with its other address)", what);
    return true;
  }
  Result<nl::ContainerLinkDeletion> deleted = driver_.DeleteContainerLinkCarrying(endpoint.endpoint_id, address);
  if (!deleted.ok()) return NoteFailedDeletion(endpoint, address, what, deleted.status(), fix);
  switch (*deleted) {
    case nl::ContainerLinkDeletion::kDeleted:
      ++report.links_deleted;
      links_deleted_.insert(endpoint.endpoint_id);
      spdlog::error("{}; its interface in the container is deleted, so the address is not on the wire twice; {}", what,
                    fix);
      break;
    case nl::ContainerLinkDeletion::kNoSuchLink:
      spdlog::warn("{}; the container's interface carries it no more: nothing sends from it here", what);
      break;
    case nl::ContainerLinkDeletion::kNoNamespace:
      spdlog::warn(
          "{}; no container on this host has the endpoint's interface (MAC {}) any more (stopped): nothing sends "
          "from it here; if the container still runs, the address is on the wire twice; {}",
          what, endpoint.mac, fix);
      break;
  }
  return true;
}

bool Reconciler::NoteFailedDeletion(const driver::EndpointRecord& endpoint, const IpAddress& address,
                                    const std::string& what, const Status& error, const std::string& fix) {
  // The container left between the endpoint list and the call: nothing of it sends any more.
  const std::optional<driver::EndpointRecord> now = driver_.FindEndpoint(endpoint.endpoint_id);
  if (!now || now->sandbox_key.empty()) {
    spdlog::info("{}; the container has left this host meanwhile: nothing to delete", what);
    return true;
  }
  const std::string key = endpoint.endpoint_id + " " + address.ToString();
  if (deletion_failures_logged_.contains(key)) {  // logged once; tried again every pass
    spdlog::debug("{}; deleting its interface failed again: {}", what, error.message());
    return false;
  }
  spdlog::error(
      "{}; its interface in the container could not be deleted ({}): the address is on the wire twice until "
      "you stop the container or a later pass deletes it (tried again every pass); {}",
      what, error.message(), fix);
  return false;
}

driver::ReconcileReport Reconciler::AtStart() {
  driver::ReconcileReport report = driver_.Reconcile();
  for (const driver::EndpointRecord& e : report.torn_down) ReleaseEndpointLeases(e);
  return report;
}

Reconciler::EngineView Reconciler::InspectStoredNetworks() {
  EngineView view;
  for (const driver::NetworkRecord& n : driver_.Networks()) {
    Result<engine::EngineNetwork> found = engine_.InspectNetwork(n.id, options_.list_timeout);
    if (found.ok()) {
      view[n.id] = *found;
    } else if (found.status().code() == Code::kNotFound) {
      view[n.id] = std::nullopt;
    }  // other errors: the engine is unsure; leave this network alone this time
  }
  return view;
}

void Reconciler::CleanLostEndpoints(const EngineView& view, PassReport& report) {
  const int64_t now = clock_();
  for (const driver::EndpointRecord& e : driver_.Endpoints()) {
    auto n = view.find(e.network_id);
    if (n == view.end()) continue;
    bool listed = false;
    if (n->second) {
      for (const engine::EngineEndpoint& known : n->second->endpoints) {
        listed = listed || known.endpoint_id == e.endpoint_id;
      }
    }
    if (listed || now - e.since < options_.stale_after.count()) continue;
    spdlog::info("endpoint {} of container \"{}\" is gone from the engine: removing its link and lease",
                 ShortId(e.endpoint_id), e.container_name);
    if (Status s = driver_.DeleteEndpoint(e.network_id, e.endpoint_id); !s.ok()) {
      spdlog::warn("lost teardown of endpoint {}: {}", ShortId(e.endpoint_id), s.message());
      continue;
    }
    ReleaseEndpointLeases(e);
    ++report.endpoints_cleaned;
  }
}

void Reconciler::CleanLostNetworks(const EngineView& view, PassReport& report) {
  const int64_t now = clock_();
  std::erase_if(network_unknown_since_, [&](const auto& entry) {
    auto n = view.find(entry.first);
    return n == view.end() || n->second.has_value();
  });
  for (const auto& [id, engine_network] : view) {
    if (engine_network) continue;
    const int64_t unknown_since = network_unknown_since_.try_emplace(id, now).first->second;
    if (now - unknown_since < options_.stale_after.count()) continue;  // maybe still being created
    std::optional<driver::NetworkRecord> record = driver_.FindNetwork(id);
    if (!record) continue;
    spdlog::info("network {} is gone from the engine: removing it", ShortId(id));
    if (Status s = driver_.DeleteNetwork(id); !s.ok()) {
      spdlog::warn("lost teardown of network {}: {}", ShortId(id), s.message());
      continue;
    }
    network_unknown_since_.erase(id);
    ReleaseHostAddress(ipam_, *record);
    ReleaseNetworkPools(*record);
    ++report.networks_cleaned;
  }
}

Reconciler::PassReport Reconciler::PassOnce() {
  PassReport report;
  // A shared address store that failed earlier is read again and the releases journaled
  // meanwhile replayed, without waiting for the next allocation. Logged when that changes.
  const Status caught_up = ipam_.CatchUp();
  if (caught_up.ok() != address_book_current_) {
    address_book_current_ = caught_up.ok();
    if (caught_up.ok()) {
      spdlog::info("the address store answers again");
    } else {
      spdlog::warn("the address store does not answer: {}", caught_up.message());
    }
  }
  if (caught_up.ok()) KeepRunningAddresses(report);
  // A ping first: while dockerd starts, its API may accept and not answer for a long time.
  Status pinged = engine_.Ping(engine_pinged_ ? options_.ping_timeout : options_.silent_ping_timeout);
  Result<std::vector<engine::EngineContainer>> containers = pinged.ok()
                                                                ? engine_.ListContainers(options_.list_timeout)
                                                                : Result<std::vector<engine::EngineContainer>>(pinged);
  // A list that ran out of time may have met a dockerd going down since the ping: ask again.
  if (!containers.ok() && pinged.ok()) pinged = engine_.Ping(options_.silent_ping_timeout);
  engine_pinged_ = pinged.ok();
  NoteEngineAnswered(pinged, containers.status());
  if (!containers.ok()) return report;
  report.engine_answered = true;
  report.names_learned = identity_.LearnPendingNames();
  const EngineView view = InspectStoredNetworks();
  CleanLostEndpoints(view, report);
  CleanLostNetworks(view, report);
  if (!options_.apply_presence) return report;
  // Reservation lifetime: a compose re-create renames the old container to <id12>_<name> first,
  // so only names no container carries count as gone.
  std::vector<std::string> present;
  for (const engine::EngineContainer& c : *containers) {
    present.push_back(c.name);
    // A swarm task's reservation is its slot's (identity/swarm_name.h), which no container is named.
    if (std::string slot = identity::ReservationName(c.name, c.labels); slot != c.name) present.push_back(slot);
  }
  Result<std::vector<std::string>> released = ipam_.ApplyPresence(present);
  if (released.ok()) {
    report.reservations_released = static_cast<int>(released->size());
  } else {
    spdlog::warn("reservation lifetime not applied: {}", released.status().message());
  }
  return report;
}

// Logged when it changes, not at every pass: a warning when the engine stops answering (names of
// new containers are learned, and lost teardowns cleaned, once it answers again), info when back.
// The handlers stop asking the engine only when it answers no ping (dockerd starting): a list
// that runs out of time after a ping answered is a busy engine (a full-size swarm run beside a CI
// run lost a serial update's slot to a pass's 3 s list so), which the handlers still ask.
void Reconciler::NoteEngineAnswered(const Status& pinged, const Status& answered) {
  identity_.NoteEngineAnswered(pinged.ok());
  if (answered.ok() == engine_answering_) return;
  engine_answering_ = answered.ok();
  if (answered.ok()) {
    spdlog::info("the Docker engine answers again");
  } else if (pinged.ok()) {
    spdlog::warn(
        "the Docker engine answers its ping but not its container list in time ({}): busy; container names are "
        "learned, and lost teardowns cleaned up, once it does",
        answered.message());
  } else {
    spdlog::warn(
        "the Docker engine does not answer ({}): container names are learned, and lost teardowns cleaned up, once "
        "it does",
        answered.message());
  }
}

void Reconciler::StartBackground() {
  worker_ = std::jthread([this](const std::stop_token& stop) {
    while (!stop.stop_requested()) {
      const PassReport r = PassOnce();
      if (r.names_learned > 0 || r.reservations_released > 0 || r.endpoints_cleaned > 0 || r.networks_cleaned > 0) {
        spdlog::info(
            "reconcile pass names_learned={} reservations_released={} endpoints_cleaned={} "
            "networks_cleaned={}",
            r.names_learned, r.reservations_released, r.endpoints_cleaned, r.networks_cleaned);
      }
      // While the engine does not answer (dockerd starting), look again soon. A stop request
      // ends the wait at once.
      std::unique_lock lock(wait_mu_);
      wake_.wait_for(lock, stop, r.engine_answered ? options_.interval : options_.retry_interval, [] { return false; });
    }
  });
}

void Reconciler::StopBackground() {
  worker_.request_stop();
  if (worker_.joinable()) worker_.join();
}

}  // namespace smv::daemon
