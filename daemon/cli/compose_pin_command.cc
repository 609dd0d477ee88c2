// static-macvlan compose pin: the engine's view of a compose project and the daemon's
// reservations, turned into a compose override by PinComposeProject (compose_pin.h).

#include <chrono>
#include <cstdio>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "daemon/api/wire.h"
#include "daemon/cli/compose_pin.h"
#include "daemon/cli/daemon_client.h"
#include "daemon/commands.h"
#include "engine/docker_engine.h"

namespace smv::daemon {

Status ComposePin(const ComposePinFlags& flags) {
  constexpr auto kEngineTimeout = std::chrono::seconds(10);
  auto engine = engine::DockerEngine::Create(flags.docker_host);
  if (!engine.ok()) return engine.status();
  auto containers = (*engine)->ListContainers(kEngineTimeout);
  if (!containers.ok()) return containers.status();
  std::map<std::string, engine::EngineNetwork> networks;
  for (const engine::EngineContainer& c : *containers) {
    auto project = c.labels.find("com.docker.compose.project");
    if (project == c.labels.end() || project->second != flags.project) continue;
    for (const auto& [name, attachment] : c.networks) {
      if (networks.contains(name)) continue;
      auto network = (*engine)->InspectNetwork(name, kEngineTimeout);
      if (network.ok()) networks.emplace(name, std::move(*network));
    }
  }
  auto listed = AskDaemon(flags.socket, api::wire::kListReservationsPath, api::wire::EncodeListReservations(""));
  if (!listed.ok()) return listed.status();
  std::vector<PinReservation> reservations;
  for (const api::wire::ReservationReply& r : api::wire::DecodeReservations(*listed)) {
    reservations.push_back({r.name, r.address, r.pool, r.mac});
  }
  const Result<std::string> api_version = (*engine)->ApiVersion(kEngineTimeout);
  const bool mac_per_endpoint = api_version.ok() && MacIsPerEndpointOnly(*api_version);
  Result<PinnedProject> pin = PinComposeProject(flags.project, *containers, networks, reservations, mac_per_endpoint);
  if (!pin.ok()) return pin.status();
  const std::string text = pin->override_file.dump(2) + "\n";
  if (flags.output.empty()) {
    std::fputs(text.c_str(), stdout);
  } else {
    std::ofstream out(flags.output, std::ios::trunc);
    out << text;
    out.close();
    if (!out) return Internal(fmt::format("--output \"{}\": cannot write it", flags.output));
  }
  for (const std::string& note : pin->notes) std::fprintf(stderr, "note: %s\n", note.c_str());
  std::fprintf(stderr, "pinned %d address(es) of project %s%s%s\n", pin->pinned, flags.project.c_str(),
               flags.output.empty() ? "" : " in ", flags.output.c_str());
  return OkStatus();
}

}  // namespace smv::daemon
