// static-macvlan: a Docker NetworkDriver + IpamDriver plugin for macvlan on VLANs with sticky
// addresses. main is the only place that picks implementations (libnl, LMDB) and wires them.

#include <CLI/CLI.hpp>
#include <httplib.h>
#include <malloc.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <csignal>
#include <cstdlib>
#include <pthread.h>
#include <thread>

#include "check/state_check.h"
#include "common/lmdb/env.h"
#include "common/log.h"
#include "driver/api/plugin_api.h"
#include "driver/api/plugin_server.h"
#include "driver/driver_service.h"
#include "driver/lmdb_network_store.h"
#include "driver/netlink/link_manager.h"
#include "identity/docker_engine.h"
#include "identity/identity_service.h"
#include "ipam/ipam_service.h"
#include "ipam/lmdb_store.h"

namespace {

struct ServeFlags {
  std::string socket = "/run/docker/plugins/static-macvlan.sock";
  std::string state_dir = "/var/lib/static-macvlan";
  std::string log_level = "info";
  std::string docker_host = "unix:///var/run/docker.sock";
  size_t db_size_mib = 1024;
  unsigned reconcile_seconds = 5;
  unsigned stale_after_seconds = 60;
  std::vector<std::string> allowed_parents;
};

struct ReservationFlags {
  std::string socket = "/run/docker/plugins/static-macvlan.sock";
  std::string network;
  bool json = false;
  std::string name;
  std::string address;
  std::string target;
};

std::vector<std::string> AllDatabases() {
  std::vector<std::string> dbs = smv::ipam::LmdbIpamStore::DatabaseNames();
  for (const std::string& db : smv::driver::LmdbNetworkStore::DatabaseNames()) dbs.push_back(db);
  return dbs;
}

// The LMDB environment and the two stores on it.
struct Stores {
  std::unique_ptr<smv::lmdb::Env> env;
  std::unique_ptr<smv::ipam::LmdbIpamStore> ipam;
  std::unique_ptr<smv::driver::LmdbNetworkStore> networks;
};

smv::Result<Stores> OpenStores(const ServeFlags& flags) {
  Stores stores;
  auto env = smv::lmdb::Env::Open(flags.state_dir, flags.db_size_mib << 20, AllDatabases());
  if (!env.ok()) return env.status();
  stores.env = std::move(env).value();
  auto ipam = smv::ipam::LmdbIpamStore::Open(*stores.env);
  if (!ipam.ok()) return ipam.status();
  stores.ipam = std::move(ipam).value();
  auto networks = smv::driver::LmdbNetworkStore::Open(*stores.env);
  if (!networks.ok()) return networks.status();
  stores.networks = std::move(networks).value();
  return stores;
}

smv::Status Serve(const ServeFlags& flags) {
  SMV_RETURN_IF_ERROR(smv::InitLogging(flags.log_level));
  // Block the stop signals before any thread starts, so only the waiter below receives them.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  // Start-up order: open the store, reconcile the kernel with it, then listen.
  auto stores = OpenStores(flags);
  if (!stores.ok()) return stores.status();
  auto links = smv::nl::LinkManager::Open();
  if (!links.ok()) return links.status();
  auto ipam = smv::ipam::IpamService::Create(*stores->ipam);
  if (!ipam.ok()) return ipam.status();
  auto driver = smv::driver::DriverService::Create(**links, *stores->networks);
  if (!driver.ok()) return driver.status();
  (*driver)->SetAllowedParents(flags.allowed_parents);
  auto reaper_links = smv::nl::LinkManager::Open();
  if (!reaper_links.ok()) return reaper_links.status();
  smv::driver::LinkReaper reaper(std::move(reaper_links).value());
  smv::driver::ReconcileReport reconciled = (*driver)->Reconcile();
  for (const smv::driver::EndpointRecord& e : reconciled.torn_down) {
    for (const std::string& cidr : {e.address_v4, e.address_v6}) {
      std::optional<smv::Prefix> address = smv::Prefix::Parse(cidr);
      if (!address) continue;
      for (const std::string& pool : (*ipam)->PoolsLeasing(address->address())) {
        (void)(*ipam)->ReleaseAddress(pool, address->address().ToString());
      }
    }
  }

  // Start-up has read the whole store and built its indexes: give back what only the loading
  // needed (the file's pages, the parsed records) so that a large state costs its indexes only.
  stores->env->DropMappedPages();
  malloc_trim(0);

  (*driver)->SetLinkReaper(&reaper);  // after Reconcile, which deletes synchronously

  auto engine = smv::identity::DockerEngine::Create(flags.docker_host);
  if (!engine.ok()) return engine.status();
  smv::identity::IdentityOptions identity_options;
  identity_options.reconcile_interval = std::chrono::seconds(flags.reconcile_seconds);
  identity_options.stale_after = std::chrono::seconds(flags.stale_after_seconds);
  smv::identity::IdentityService identity(**engine, **ipam, **driver, identity_options);

  smv::api::PluginApi api(**driver, **ipam, &identity, engine->get());
  auto server = smv::api::PluginServer::Bind(flags.socket, api);
  if (!server.ok()) return server.status();
  // Engine calls happen here, outside handlers, once the engine answers (not during its boot).
  identity.StartBackground();

  std::thread waiter([&stop_signals, &server] {
    int signal = 0;
    sigwait(&stop_signals, &signal);
    spdlog::info("stopping signal={}", signal);
    (*server)->Stop();
  });
  smv::Status served = (*server)->Serve();
  if (waiter.joinable()) {
    // Serve() can also end on its own; wake the waiter so it can be joined.
    pthread_kill(waiter.native_handle(), SIGTERM);
    waiter.join();
  }
  identity.StopBackground();
  server->reset();  // removes the socket
  spdlog::info("stopped");
  return served;
}

// Reads the state database (LMDB allows a reader beside the running daemon) and reports every
// inconsistency; exit status 1 when there is one.
smv::Status Fsck(const ServeFlags& flags) {
  auto stores = OpenStores(flags);
  if (!stores.ok()) return stores.status();
  auto ipam = stores->ipam->Load();
  if (!ipam.ok()) return ipam.status();
  auto networks = stores->networks->Load();
  if (!networks.ok()) return networks.status();
  const std::vector<std::string> problems = smv::check::CheckState(*ipam, *networks);
  std::printf("pools=%zu leases=%zu reservations=%zu networks=%zu endpoints=%zu problems=%zu\n",
              ipam->pools.size(), ipam->leases.size(), ipam->reservations.size(),
              networks->networks.size(), networks->endpoints.size(), problems.size());
  for (const std::string& p : problems) std::printf("problem: %s\n", p.c_str());
  if (!problems.empty()) return smv::FailedPrecondition(fmt::format("{} problem(s) in {}", problems.size(), flags.state_dir));
  return smv::OkStatus();
}

// The reservations commands ask the running daemon over its socket, so they see and change the
// same state the daemon serves (LMDB would allow a second writer, but the daemon's memory would
// not know).
smv::Result<nlohmann::json> AskDaemon(const std::string& socket, const std::string& call,
                                      const nlohmann::json& body) {
  httplib::Client client(socket);
  client.set_address_family(AF_UNIX);
  client.set_read_timeout(10, 0);
  httplib::Result r = client.Post(("/StaticMacvlan." + call).c_str(),
                                  body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace),
                                  "application/json");
  if (!r) {
    return smv::Unavailable(fmt::format("cannot reach the static-macvlan daemon at {} ({}); is it running?",
                                        socket, httplib::to_string(r.error())));
  }
  nlohmann::json out = nlohmann::json::parse(r->body, nullptr, false);
  if (r->status != 200) {
    return smv::Internal(out.is_object() && out.contains("Err") ? out["Err"].get<std::string>() : r->body);
  }
  return out;
}

std::string FormatTime(int64_t unix_seconds) {
  if (unix_seconds == 0) return "-";
  const std::time_t t = static_cast<std::time_t>(unix_seconds);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

smv::Status ListReservations(const ReservationFlags& flags) {
  auto out = AskDaemon(flags.socket, "ListReservations", {{"Network", flags.network}});
  if (!out.ok()) return out.status();
  const nlohmann::json& list = (*out)["Reservations"];
  if (flags.json) {
    std::puts(list.dump(2).c_str());
    return smv::OkStatus();
  }
  std::printf("%-32s %-16s %-18s %-28s %-22s %s\n", "NAME", "ADDRESS", "MAC", "POOL", "STATE", "SINCE");
  for (const nlohmann::json& r : list) {
    std::string state = r["State"];
    if (r.contains("DriftedTo")) state += " (now " + r["DriftedTo"].get<std::string>() + ")";
    if (r["GoneSince"].get<int64_t>() != 0) state += ", gone";
    std::printf("%-32s %-16s %-18s %-28s %-22s %s\n", r["Name"].get<std::string>().c_str(),
                r["Address"].get<std::string>().c_str(), r["MacAddress"].get<std::string>().c_str(),
                r["Pool"].get<std::string>().c_str(), state.c_str(),
                FormatTime(r["Since"].get<int64_t>()).c_str());
  }
  return smv::OkStatus();
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"static-macvlan: Docker network + IPAM plugin: macvlan on VLANs, sticky addresses"};
  app.require_subcommand(1);
  ServeFlags flags;
  CLI::App* serve = app.add_subcommand("serve", "serve the plugin API on a unix socket");
  serve->add_option("--socket", flags.socket, "unix socket dockerd connects to")->capture_default_str();
  serve->add_option("--state-dir", flags.state_dir, "directory of the LMDB state database")
      ->capture_default_str();
  serve->add_option("--log-level", flags.log_level, "trace, debug, info, warn, error or off")
      ->capture_default_str();
  serve->add_option("--db-size-mib", flags.db_size_mib, "maximum size of the state database")
      ->capture_default_str()
      ->check(CLI::Range(size_t{1}, size_t{1} << 20));
  serve->add_option("--docker-host", flags.docker_host, "engine API, to learn container names")
      ->capture_default_str();
  serve->add_option("--reconcile-interval", flags.reconcile_seconds,
                    "seconds between background passes over the engine API")
      ->capture_default_str()
      ->check(CLI::Range(1u, 3600u));

  serve->add_option("--stale-after", flags.stale_after_seconds,
                    "seconds after which an endpoint the engine does not list is a lost teardown")
      ->capture_default_str()
      ->check(CLI::Range(1u, 86400u));
  serve->add_option("--allowed-parents", flags.allowed_parents,
                    "only these parent interfaces may carry networks (default: any)")
      ->delimiter(',');

  CLI::App* fsck = app.add_subcommand("fsck", "check the stored state for inconsistencies");
  fsck->add_option("--state-dir", flags.state_dir, "directory of the LMDB state database")->capture_default_str();

  ReservationFlags rflags;
  CLI::App* reservations = app.add_subcommand("reservations", "see and manage name -> address reservations");
  reservations->require_subcommand(1);
  reservations->add_option("--socket", rflags.socket, "the daemon's socket")->capture_default_str();
  CLI::App* ls = reservations->add_subcommand("ls", "list reservations");
  ls->add_option("--network", rflags.network, "only this Docker network (name or id)");
  ls->add_flag("--json", rflags.json, "JSON output");
  CLI::App* reserve = reservations->add_subcommand("reserve", "pre-assign ADDRESS to container NAME");
  reserve->add_option("NAME", rflags.name, "container name")->required();
  reserve->add_option("ADDRESS", rflags.address, "address in the network's subnet")->required();
  reserve->add_option("--network", rflags.network, "Docker network (name or id)")->required();
  CLI::App* release = reservations->add_subcommand("release", "drop the reservation of a name or address");
  release->add_option("TARGET", rflags.target, "container name or address")->required();
  CLI11_PARSE(app, argc, argv);

  smv::Status status;
  if (serve->parsed()) {
    status = Serve(flags);
  } else if (fsck->parsed()) {
    status = Fsck(flags);
  } else if (ls->parsed()) {
    status = ListReservations(rflags);
  } else if (reserve->parsed()) {
    auto out = AskDaemon(rflags.socket, "Reserve",
                         {{"Name", rflags.name}, {"Address", rflags.address}, {"Network", rflags.network}});
    status = out.status();
    if (out.ok()) std::printf("%s reserved for %s\n", rflags.address.c_str(), rflags.name.c_str());
  } else if (release->parsed()) {
    auto out = AskDaemon(rflags.socket, "Release", {{"Target", rflags.target}});
    status = out.status();
    if (out.ok()) std::printf("released %d reservation(s) of %s\n", (*out)["Released"].get<int>(), rflags.target.c_str());
  }
  if (!status.ok()) {
    if (serve->parsed()) spdlog::error("static-macvlan serve: {}", status.message());
    else std::fprintf(stderr, "static-macvlan: %s\n", status.message().c_str());
    return 1;
  }
  return 0;
}
