// static-macvlan: a Docker NetworkDriver + IpamDriver plugin for macvlan on VLANs with sticky
// addresses. main is the only place that picks implementations (libnl, LMDB) and wires them.

#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include <csignal>
#include <cstdlib>
#include <pthread.h>
#include <thread>

#include "common/lmdb/env.h"
#include "common/log.h"
#include "driver/api/plugin_api.h"
#include "driver/api/plugin_server.h"
#include "driver/driver_service.h"
#include "driver/lmdb_network_store.h"
#include "driver/netlink/link_manager.h"
#include "ipam/ipam_service.h"
#include "ipam/lmdb_store.h"

namespace {

struct ServeFlags {
  std::string socket = "/run/docker/plugins/static-macvlan.sock";
  std::string state_dir = "/var/lib/static-macvlan";
  std::string log_level = "info";
  size_t db_size_mib = 1024;
};

std::vector<std::string> AllDatabases() {
  std::vector<std::string> dbs = smv::ipam::LmdbIpamStore::DatabaseNames();
  for (const std::string& db : smv::driver::LmdbNetworkStore::DatabaseNames()) dbs.push_back(db);
  return dbs;
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
  auto env = smv::lmdb::Env::Open(flags.state_dir, flags.db_size_mib << 20, AllDatabases());
  if (!env.ok()) return env.status();
  auto ipam_store = smv::ipam::LmdbIpamStore::Open(**env);
  if (!ipam_store.ok()) return ipam_store.status();
  auto network_store = smv::driver::LmdbNetworkStore::Open(**env);
  if (!network_store.ok()) return network_store.status();
  auto links = smv::nl::LinkManager::Open();
  if (!links.ok()) return links.status();
  auto ipam = smv::ipam::IpamService::Create(**ipam_store);
  if (!ipam.ok()) return ipam.status();
  auto driver = smv::driver::DriverService::Create(**links, **network_store);
  if (!driver.ok()) return driver.status();
  (void)(*driver)->Reconcile();

  smv::api::PluginApi api(**driver, **ipam);
  auto server = smv::api::PluginServer::Bind(flags.socket, api);
  if (!server.ok()) return server.status();

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
  server->reset();  // removes the socket
  spdlog::info("stopped");
  return served;
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
  CLI11_PARSE(app, argc, argv);

  if (serve->parsed()) {
    smv::Status status = Serve(flags);
    if (!status.ok()) {
      spdlog::error("static-macvlan serve: {}", status.message());
      return 1;
    }
  }
  return 0;
}
