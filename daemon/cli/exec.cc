// static-macvlan exec: runs a host command (ip, ping, tcpdump) inside a container's network
// namespace, the nsenter shell function of the field notes made a command. The container is found
// through the engine API; only the network namespace is entered, so the host's tools and files
// stay what they are.

#include <fcntl.h>
#include <sched.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <string>
#include <vector>

#include "daemon/commands.h"
#include "engine/docker_engine.h"

namespace smv::daemon {
namespace {

constexpr std::chrono::seconds kExecEngineTimeout{10};

// Docker's container names and ids: [a-zA-Z0-9][a-zA-Z0-9_.-]*; nothing else goes into a path.
bool IsContainerRef(const std::string& ref) {
  if (ref.empty() || !std::isalnum(static_cast<unsigned char>(ref.front()))) return false;
  for (char c : ref) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '.' && c != '-') return false;
  }
  return true;
}

}  // namespace

Status ExecInContainer(const ExecFlags& flags) {
  if (!IsContainerRef(flags.container)) {
    return InvalidArgument(
        fmt::format("container \"{}\": want a container name or id (letters, digits, '_', '.', '-')", flags.container));
  }
  if (flags.command.empty()) return InvalidArgument("no command given: static-macvlan exec CONTAINER -- CMD [ARGS...]");
  auto engine = engine::DockerEngine::Create(flags.docker_host);
  if (!engine.ok()) return engine.status();
  Result<engine::ContainerProcess> container = (*engine)->InspectContainer(flags.container, kExecEngineTimeout);
  if (!container.ok()) {
    if (container.status().code() == Code::kNotFound) {
      return NotFound(fmt::format("container \"{}\" is not known to the engine at {} (docker ps -a lists them)",
                                  flags.container, flags.docker_host));
    }
    return Unavailable(fmt::format("cannot ask the engine at --docker-host {} about container \"{}\": {}",
                                   flags.docker_host, flags.container, container.status().message()));
  }
  if (container->status != "running" || container->pid <= 0) {
    return FailedPrecondition(
        fmt::format("container \"{}\" is not running (status: {}); its network exists only while it runs: docker "
                    "start {}",
                    flags.container, container->status.empty() ? "unknown" : container->status, flags.container));
  }
  const std::string ns_path = fmt::format("/proc/{}/ns/net", container->pid);
  const int ns = open(ns_path.c_str(), O_RDONLY | O_CLOEXEC);
  if (ns < 0) {
    return PermissionDenied(fmt::format("cannot open {} (the network namespace of container \"{}\"): {}; run as root",
                                        ns_path, flags.container, std::strerror(errno)));
  }
  if (setns(ns, CLONE_NEWNET) != 0) {
    const int error = errno;
    close(ns);
    return PermissionDenied(fmt::format("cannot enter the network namespace of container \"{}\": {}; run as root",
                                        flags.container, std::strerror(error)));
  }
  close(ns);
  std::vector<char*> argv;
  for (const std::string& arg : flags.command) argv.push_back(const_cast<char*>(arg.c_str()));
  argv.push_back(nullptr);
  execvp(argv[0], argv.data());
  return NotFound(fmt::format("cannot run \"{}\": {}", flags.command.front(), std::strerror(errno)));
}

}  // namespace smv::daemon
