// static-macvlan: a Docker NetworkDriver + IpamDriver plugin for macvlan on VLANs with sticky
// addresses. main only declares the command line and calls the command (commands.h).

#include <algorithm>
#include <csignal>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>

#include "commands.h"
#include "daemon/api/wire.h"
#include "daemon/daemon_socket.h"

namespace {

using smv::daemon::ReservationFlags;
using smv::daemon::ServeFlags;

// The documented exit codes: 0 done, 1 the command failed, 2 the command line is wrong.
constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;

std::vector<const CLI::App*> CommandsOf(const CLI::App& app) {
  return app.get_subcommands(std::function<bool(const CLI::App*)>());
}

std::string CommandNames(const CLI::App& app) {
  std::string names;
  for (const CLI::App* command : CommandsOf(app)) names += (names.empty() ? "" : ", ") + command->get_name();
  return names;
}

// The option `word` (--name, -n or --name=value) names in `app` or a command above it; nullptr if none.
const CLI::Option* OptionNamed(const CLI::App& app, const std::string& word) {
  const std::string name = word.substr(0, word.find('='));
  for (const CLI::App* at = &app; at != nullptr; at = at->get_parent()) {
    if (const CLI::Option* option = at->get_option_no_throw(name)) return option;
  }
  return nullptr;
}

// When `args` name no command where one is wanted (a misspelt one, or none), the line that says
// so with the commands there; "" when the mistake is elsewhere (CLI11's message says it then).
std::string CommandMistake(const CLI::App& app, const std::vector<std::string>& args) {
  const CLI::App* at = &app;
  std::string given;  // the commands so far, e.g. "reservations "
  for (size_t i = 0; i < args.size() && !CommandsOf(*at).empty(); ++i) {
    const std::string& word = args[i];
    if (word == "--") break;
    if (word.starts_with('-')) {
      const CLI::Option* option = OptionNamed(*at, word);
      if (option == nullptr) return "";  // an option not taken here: CLI11's message names it
      if (option->get_type_size() != 0 && word.find('=') == std::string::npos) ++i;  // skip its value
      continue;
    }
    const std::vector<const CLI::App*> commands = CommandsOf(*at);
    auto named = std::find_if(commands.begin(), commands.end(), [&](const CLI::App* c) { return c->check_name(word); });
    if (named == commands.end()) {
      return fmt::format("unknown command \"{}{}\"; {}commands: {}", given, word, given, CommandNames(*at));
    }
    at = *named;
    given += word + " ";
  }
  if (CommandsOf(*at).empty()) return "";
  if (given.empty()) return "a command is wanted; commands: " + CommandNames(*at);
  return fmt::format("\"{}\" wants a command; {}commands: {}", given.substr(0, given.size() - 1), given,
                     CommandNames(*at));
}

// Parses the command line; an exit code when the program ends here (help, version, a usage
// error: 2 with one line saying what is wrong), else nullopt.
std::optional<int> ParseCommandLine(CLI::App& app, int argc, char** argv) {
  try {
    app.parse(argc, argv);
    return std::nullopt;
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == static_cast<int>(CLI::ExitCodes::Success)) return app.exit(e);
    const std::string mistake = CommandMistake(app, std::vector<std::string>(argv + 1, argv + argc));
    std::fprintf(stderr, "static-macvlan: %s\nRun with --help for more information.\n",
                 mistake.empty() ? e.what() : mistake.c_str());
    return kExitUsage;
  }
}

// CLI11 reads the SMV_* variables of every command's options, also of commands not given, where a
// value out of range (SMV_DB_SIZE_MIB=0) would fail another command. With a parse-complete
// callback, a command's options read the environment only when the command is given.
void ReadEnvironmentOnlyWhenGiven(CLI::App& command) {
  command.parse_complete_callback([] {});
}

// Where the address book is and how to reach it: serve and fsck. Each option of a running
// daemon also reads an SMV_* environment variable: a managed plugin is configured that way
// (docker plugin set), and the .deb's /etc/default/static-macvlan sets them for the service.
void AddStoreOptions(CLI::App& command, ServeFlags& flags) {
  ReadEnvironmentOnlyWhenGiven(command);
  command
      .add_option("--store", flags.store,
                  "address book: lmdb (in --state-dir) or etcd://HOST:PORT[,HOST:PORT...] (shared by several hosts; "
                  "networks and endpoints stay in --state-dir)")
      ->capture_default_str()
      ->envname("SMV_STORE");
  command.add_option("--etcd-cacert", flags.etcd_cacert, "etcd: speak TLS, trusting the CA certificates in this file")
      ->envname("SMV_ETCD_CACERT");
  command.add_option("--etcd-cert", flags.etcd_cert, "etcd: TLS client certificate (with --etcd-key)")
      ->envname("SMV_ETCD_CERT");
  command.add_option("--etcd-key", flags.etcd_key, "etcd: TLS client key (with --etcd-cert)")->envname("SMV_ETCD_KEY");
  command
      .add_option("--etcd-user", flags.etcd_user, "etcd: user name (etcdctl auth enable; with --etcd-password-file)")
      ->envname("SMV_ETCD_USER");
  command
      .add_option("--etcd-password-file", flags.etcd_password_file,
                  "etcd: file holding --etcd-user's password (kept off the command line)")
      ->envname("SMV_ETCD_PASSWORD_FILE");
}

void AddServeOptions(CLI::App& serve, ServeFlags& flags) {
  serve.add_option("--socket", flags.socket, "unix socket dockerd connects to")
      ->capture_default_str()
      ->envname("SMV_SOCKET");
  serve.add_option("--state-dir", flags.state_dir, "directory of the LMDB state database")
      ->capture_default_str()
      ->envname("SMV_STATE_DIR");
  serve.add_option("--log-level", flags.log_level, "trace, debug, info, warn, error or off")
      ->capture_default_str()
      ->envname("SMV_LOG_LEVEL");
  serve.add_option("--db-size-mib", flags.db_size_mib, "maximum size of the state database")
      ->capture_default_str()
      ->check(CLI::Range(size_t{1}, size_t{1} << 20))
      ->envname("SMV_DB_SIZE_MIB");
  serve.add_option("--docker-host", flags.docker_host, "engine API, to learn container names")
      ->capture_default_str()
      ->envname("SMV_DOCKER_HOST");
  serve
      .add_option("--reconcile-interval", flags.reconcile_seconds,
                  "seconds between background passes over the engine API")
      ->capture_default_str()
      ->check(CLI::Range(1u, 3600u))
      ->envname("SMV_RECONCILE_INTERVAL");
  serve
      .add_option("--stale-after", flags.stale_after_seconds,
                  "seconds after which an endpoint or network the engine does not know is a lost teardown")
      ->capture_default_str()
      ->check(CLI::Range(1u, 86400u))
      ->envname("SMV_STALE_AFTER");
  serve
      .add_option("--allowed-parents", flags.allowed_parents,
                  "only these parent interfaces may carry networks (default: any)")
      ->delimiter(',')
      ->envname("SMV_ALLOWED_PARENTS");
  serve
      .add_option("--metrics-listen", flags.metrics_listen,
                  "also serve GET /metrics on this TCP ADDRESS:PORT (it is always on the plugin socket)")
      ->envname("SMV_METRICS_LISTEN");
  serve
      .add_flag("--mac-identity", flags.mac_identity,
                "tell dockerd the IPAM needs each container's MAC (RequiresMACAddress): a fixed --mac-address then "
                "identifies its container at RequestAddress on engines before Docker 29, but dockerd gives every "
                "other container a new random MAC at each start (default off: a name keeps its MAC with its address)")
      ->envname("SMV_MAC_IDENTITY");
  serve
      .add_option("--net-sysctl-dir", flags.net_sysctl_dir,
                  "where the host's /proc/sys/net is (a managed plugin, whose /proc/sys is read-only, mounts it "
                  "elsewhere)")
      ->capture_default_str()
      ->envname("SMV_NET_SYSCTL_DIR");
  AddStoreOptions(serve, flags);
  serve.add_option("--node-name", flags.node_name, "this host's name in a shared address book (default: hostname)")
      ->envname("SMV_NODE_NAME");
}

struct ReservationCommands {
  CLI::App* ls;
  CLI::App* reserve;
  CLI::App* release;
  CLI::App* exporter;
  CLI::App* importer;
};

// A name Docker could give a container, checked here so that a typo is a usage error naming NAME.
CLI::Validator ContainerNameCheck() {
  return CLI::Validator(
      [](const std::string& name) {
        return smv::api::wire::IsContainerName(name)
                   ? std::string()
                   : fmt::format("\"{}\" is not a container name: want {}", name, smv::api::wire::kContainerNameRule);
      },
      "", "container name");
}

ReservationCommands AddReservationCommands(CLI::App& app, ReservationFlags& flags) {
  CLI::App* reservations = app.add_subcommand("reservations", "see and manage name -> address reservations");
  reservations->require_subcommand(1);
  reservations->add_option("--socket", flags.socket, "the daemon's socket")->capture_default_str();
  reservations->add_option("--docker-host", flags.docker_host, "engine API, for import --from-docker")
      ->capture_default_str();
  CLI::App* ls = reservations->add_subcommand("ls", "list reservations");
  ls->add_option("--network", flags.network, "only this Docker network (name or id)");
  ls->add_flag("--json", flags.json, "JSON output");
  CLI::App* reserve = reservations->add_subcommand("reserve", "pre-assign ADDRESS to container NAME");
  reserve->add_option("NAME", flags.name, "container name")->required()->check(ContainerNameCheck());
  reserve->add_option("ADDRESS", flags.address, "address in the network's subnet")->required();
  reserve->add_option("--network", flags.network, "Docker network (name or id)")->required();
  CLI::App* release = reservations->add_subcommand(
      "release", "drop the reservation of a name or address, or (--node) free what a dead host holds");
  CLI::Option* target = release->add_option("TARGET", flags.target, "container name or address");
  release
      ->add_option("--node", flags.node,
                   "free every address NODE holds in the shared book (a host that is down for good); its names keep "
                   "their reservations and may then run on other hosts")
      ->excludes(target);
  CLI::App* exporter = reservations->add_subcommand("export", "print the reservations as JSON, for import");
  exporter->add_option("--network", flags.network, "only this Docker network (name or id)");
  CLI::App* importer = reservations->add_subcommand(
      "import", "reserve names' addresses in NET: from a file (export's JSON) or from another Docker network");
  importer->add_option("--network", flags.network, "the static-macvlan network to reserve in (name or id)")->required();
  CLI::Option* file = importer->add_option("FILE", flags.file, "JSON written by reservations export");
  importer
      ->add_option("--from-docker", flags.from_docker,
                   "a Docker network (e.g. built-in macvlan): each container's name gets its current address")
      ->excludes(file);
  importer->add_option("--docker-host", flags.docker_host, "engine API, for --from-docker")->capture_default_str();
  // Also after the command (reservations ls --socket X), where every other command takes it.
  for (CLI::App* command : {ls, reserve, release, exporter, importer}) {
    command->add_option("--socket", flags.socket, "the daemon's socket")->capture_default_str();
  }
  return {ls, reserve, release, exporter, importer};
}

CLI::App* AddDoctorCommand(CLI::App& app, smv::daemon::DoctorFlags& flags) {
  CLI::App* doctor = app.add_subcommand(
      "doctor",
      "check the daemon, the engine, each network's links and the stored state; print the fix of each failure");
  doctor->add_option("--socket", flags.serve.socket, "the daemon's socket")->capture_default_str();
  doctor->add_option("--state-dir", flags.serve.state_dir, "the daemon's state directory")->capture_default_str();
  doctor->add_option("--docker-host", flags.serve.docker_host, "engine API")->capture_default_str();
  doctor->add_option("--network", flags.network, "only this network (name, id or id prefix)");
  doctor->add_flag("--json", flags.json, "print the checks as JSON");
  AddStoreOptions(*doctor, flags.serve);
  return doctor;
}

CLI::App* AddExecCommand(CLI::App& app, smv::daemon::ExecFlags& flags) {
  CLI::App* exec = app.add_subcommand(
      "exec", "run a host command in a running container's network namespace: exec CONTAINER -- CMD [ARGS...]");
  exec->add_option("--docker-host", flags.docker_host, "engine API, to find the container")->capture_default_str();
  exec->add_option("CONTAINER", flags.container, "container name or id")->required();
  exec->add_option("COMMAND", flags.command, "the command and its arguments, after --")->required();
  return exec;
}

// Adds "compose" and returns its one subcommand, "pin".
CLI::App* AddComposePinCommand(CLI::App& app, smv::daemon::ComposePinFlags& flags) {
  CLI::App* compose = app.add_subcommand("compose", "help compose projects keep their addresses");
  compose->require_subcommand(1);
  // Before "pin" as well as after it, as for reservations.
  compose->add_option("--socket", flags.socket, "the daemon's socket")->capture_default_str();
  compose->add_option("--docker-host", flags.docker_host, "engine API")->capture_default_str();
  CLI::App* pin = compose->add_subcommand(
      "pin",
      "write a compose override giving each service of a project its reserved address (ipv4_address / "
      "ipv6_address), so that parallel starts on engines before Docker 29 keep every address");
  pin->add_option("-p,--project", flags.project, "compose project name")->required();
  pin->add_option("-o,--output", flags.output,
                  "write the override here (a JSON file compose reads as YAML; "
                  "default: stdout)");
  pin->add_option("--socket", flags.socket, "the daemon's socket")->capture_default_str();
  pin->add_option("--docker-host", flags.docker_host, "engine API")->capture_default_str();
  return pin;
}

}  // namespace

int main(int argc, char** argv) {
  // A peer that hangs up turns a socket write into EPIPE for that one connection instead of
  // ending the daemon (or the CLI, which then reports the failed request).
  std::signal(SIGPIPE, SIG_IGN);
  CLI::App app{"static-macvlan: Docker network + IPAM plugin: macvlan on VLANs, sticky addresses"};
  app.require_subcommand(1);
  // Each command its own flags: options of two commands on one variable let one command's SMV_*
  // value overwrite the other's flag from the command line (SMV_STORE beat serve --store).
  ServeFlags flags;
  CLI::App* serve = app.add_subcommand("serve", "serve the plugin API on a unix socket");
  AddServeOptions(*serve, flags);
  ServeFlags fsck_flags;
  CLI::App* fsck = app.add_subcommand("fsck", "check the stored state for inconsistencies");
  fsck->add_option("--state-dir", fsck_flags.state_dir, "directory of the LMDB state database")
      ->capture_default_str()
      ->envname("SMV_STATE_DIR");
  AddStoreOptions(*fsck, fsck_flags);
  ReservationFlags rflags;
  const ReservationCommands reservations = AddReservationCommands(app, rflags);
  smv::daemon::DoctorFlags dflags;
  CLI::App* doctor = AddDoctorCommand(app, dflags);
  smv::daemon::ExecFlags eflags;
  CLI::App* exec = AddExecCommand(app, eflags);
  smv::daemon::ComposePinFlags cflags;
  CLI::App* pin = AddComposePinCommand(app, cflags);
  app.set_version_flag("--version", std::string("static-macvlan ") + SMV_VERSION);
  if (std::optional<int> done = ParseCommandLine(app, argc, argv)) return *done;
  rflags.socket = smv::daemon::FindDaemonSocket(rflags.socket);
  dflags.serve.socket = smv::daemon::FindDaemonSocket(dflags.serve.socket);
  cflags.socket = smv::daemon::FindDaemonSocket(cflags.socket);

  smv::Status status;
  if (serve->parsed()) {
    status = smv::daemon::CheckSocketDirectory(flags.socket);
    if (status.ok()) status = smv::daemon::Serve(flags);
  }
  if (fsck->parsed()) status = smv::daemon::Fsck(fsck_flags);
  if (reservations.ls->parsed()) status = smv::daemon::ListReservations(rflags);
  if (reservations.reserve->parsed()) status = smv::daemon::ReserveAddress(rflags);
  if (reservations.release->parsed()) status = smv::daemon::ReleaseReservation(rflags);
  if (reservations.exporter->parsed()) status = smv::daemon::ExportReservations(rflags);
  if (reservations.importer->parsed()) status = smv::daemon::ImportReservations(rflags);
  if (exec->parsed()) status = smv::daemon::ExecInContainer(eflags);
  if (doctor->parsed()) status = smv::daemon::Doctor(dflags);
  if (pin->parsed()) status = smv::daemon::ComposePin(cflags);
  if (status.ok()) return 0;
  if (serve->parsed()) {
    spdlog::error("static-macvlan serve: {}", status.message());
  } else {
    std::fprintf(stderr, "static-macvlan: %s\n", status.message().c_str());
  }
  return kExitFailure;
}
