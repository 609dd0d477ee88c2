// serve and fsck: the only place that picks implementations (libnl, LMDB or etcd, the engine
// client) and wires them to the services.

#include <malloc.h>
#include <pthread.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <csignal>
#include <thread>

#include "commands.h"
#include "common/log.h"
#include "daemon/api/plugin_api.h"
#include "daemon/api/plugin_server.h"
#include "daemon/reconciler.h"
#include "daemon/state_check.h"
#include "daemon/state_stores.h"
#include "driver/driver_service.h"
#include "driver/netlink/link_manager.h"
#include "engine/docker_engine.h"
#include "identity/identity_service.h"
#include "ipam/etcd_store.h"
#include "ipam/ipam_service.h"

namespace smv::daemon {
namespace {

Result<StateStores> OpenStores(const ServeFlags& flags) {
  return OpenStateStores(flags.state_dir, flags.db_size_mib << 20);
}

// The address book of --store: LMDB's in the state directory, or etcd's shared by several hosts.
struct AddressBook {
  std::unique_ptr<etcd::KvClient> client;
  std::unique_ptr<ipam::EtcdIpamStore> shared;
  std::unique_ptr<ipam::LmdbReleaseJournal> journal;  // releases etcd could not take yet, kept locally
  ipam::IpamStore* store = nullptr;
};

// The etcd members of --store; none for lmdb. Checked before anything is opened or created.
Result<std::vector<etcd::Endpoint>> SharedStoreMembers(const ServeFlags& flags) {
  if (flags.store == "lmdb") return std::vector<etcd::Endpoint>{};
  Result<std::vector<etcd::Endpoint>> endpoints = etcd::ParseEndpoints(flags.store, "--store");
  if (!endpoints.ok()) return InvalidArgument(endpoints.status().message() + " (or lmdb, the default)");
  return endpoints;
}

Result<AddressBook> OpenAddressBook(const ServeFlags& flags, std::vector<etcd::Endpoint> members, StateStores& stores) {
  AddressBook book;
  if (members.empty()) {
    book.store = stores.ipam.get();
    return book;
  }
  std::string node = flags.node_name;
  if (node.empty()) {
    char host[256] = {};
    gethostname(host, sizeof host - 1);
    node = host;
  }
  book.client = std::make_unique<etcd::KvClient>(etcd::ClientOptions{.endpoints = std::move(members)});
  auto shared = ipam::EtcdIpamStore::Open(*book.client, {.node = node});
  if (!shared.ok()) return shared.status();
  book.shared = std::move(shared).value();
  book.store = book.shared.get();
  auto journal = ipam::LmdbReleaseJournal::Open(*stores.env);
  if (!journal.ok()) return journal.status();
  book.journal = std::move(journal).value();
  spdlog::info("address book shared in etcd {} as node \"{}\"", flags.store, node);
  return book;
}

// Blocks SIGTERM/SIGINT in every thread started after this, so only StopOnSignal receives them.
sigset_t BlockStopSignals() {
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  return stop_signals;
}

// Serves until a stop signal; requests in flight finish.
Status ServeUntilSignal(api::PluginServer& server, sigset_t stop_signals) {
  std::thread waiter([&stop_signals, &server] {
    int signal = 0;
    sigwait(&stop_signals, &signal);
    spdlog::info("stopping signal={}", signal);
    server.Stop();
  });
  Status served = server.Serve();
  // Serve() can also end on its own; wake the waiter so it can be joined.
  pthread_kill(waiter.native_handle(), SIGTERM);
  waiter.join();
  return served;
}

// The services on opened stores and links, in dependency order.
struct Services {
  std::unique_ptr<ipam::IpamService> ipam;
  std::unique_ptr<driver::DriverService> driver;
  std::unique_ptr<driver::LinkReaper> reaper;
};

Result<Services> CreateServices(const ServeFlags& flags, StateStores& stores, AddressBook& book,
                                nl::LinkManager& links) {
  Services s;
  auto ipam = ipam::IpamService::Create(*book.store, nullptr, book.journal.get());
  if (!ipam.ok()) return ipam.status();
  s.ipam = std::move(ipam).value();
  auto driver = driver::DriverService::Create(links, *stores.networks);
  if (!driver.ok()) return driver.status();
  s.driver = std::move(driver).value();
  s.driver->SetAllowedParents(flags.allowed_parents);
  auto reaper_links = nl::LinkManager::Open();  // its own netlink socket: see link_reaper.h
  if (!reaper_links.ok()) return reaper_links.status();
  s.reaper = std::make_unique<driver::LinkReaper>(std::move(reaper_links).value());
  return s;
}

}  // namespace

Status Serve(const ServeFlags& flags) {
  const auto started = std::chrono::steady_clock::now();
  auto ms_since = [](std::chrono::steady_clock::time_point t) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t).count();
  };
  SMV_RETURN_IF_ERROR(InitLogging(flags.log_level));
  const sigset_t stop_signals = BlockStopSignals();
  // Start-up order: open the store, reconcile the kernel with it, then listen.
  auto members = SharedStoreMembers(flags);
  if (!members.ok()) return members.status();
  auto stores = OpenStores(flags);
  if (!stores.ok()) return stores.status();
  auto book = OpenAddressBook(flags, std::move(members).value(), *stores);
  if (!book.ok()) return book.status();
  auto links = nl::LinkManager::Open();
  if (!links.ok()) return links.status();
  auto services = CreateServices(flags, *stores, *book, **links);
  if (!services.ok()) return services.status();
  const auto loaded_ms = ms_since(started);
  auto engine = engine::DockerEngine::Create(flags.docker_host);
  if (!engine.ok()) return engine.status();
  identity::IdentityService identity(**engine, *services->ipam, *services->driver);
  Reconciler reconciler(**engine, *services->ipam, *services->driver, identity,
                        {.interval = std::chrono::seconds(flags.reconcile_seconds),
                         .stale_after = std::chrono::seconds(flags.stale_after_seconds),
                         // This host's engine cannot tell a name running on another host from a
                         // gone one: no reservation ages out of a shared book yet.
                         .apply_presence = !book->store->shared()});
  reconciler.AtStart();
  // Start-up has read the whole store and built its indexes: give back what only the loading
  // needed (the file's pages, the parsed records) so that a large state costs its indexes only.
  stores->env->DropMappedPages();
  malloc_trim(0);
  services->driver->SetLinkReaper(services->reaper.get());  // after AtStart, which deletes synchronously

  api::PluginApi api(*services->driver, *services->ipam, &identity, engine->get());
  auto server = api::PluginServer::Bind(flags.socket, api);
  if (!server.ok()) return server.status();
  spdlog::info("ready in {} ms (state loaded in {} ms)", ms_since(started), loaded_ms);
  // Engine calls happen here, outside handlers, once the engine answers (not during its boot).
  reconciler.StartBackground();
  Status served = ServeUntilSignal(**server, stop_signals);
  reconciler.StopBackground();
  server->reset();  // removes the socket
  spdlog::info("stopped");
  return served;
}

Status Fsck(const ServeFlags& flags) {
  auto stores = OpenStores(flags);
  if (!stores.ok()) return stores.status();
  auto ipam = stores->ipam->Load();
  if (!ipam.ok()) return ipam.status();
  auto networks = stores->networks->Load();
  if (!networks.ok()) return networks.status();
  const std::vector<std::string> problems = CheckState(*ipam, *networks);
  std::printf("pools=%zu leases=%zu reservations=%zu networks=%zu endpoints=%zu problems=%zu\n", ipam->pools.size(),
              ipam->leases.size(), ipam->reservations.size(), networks->networks.size(), networks->endpoints.size(),
              problems.size());
  for (const std::string& p : problems) std::printf("problem: %s\n", p.c_str());
  if (!problems.empty()) {
    return FailedPrecondition(fmt::format("{} problem(s) in {}", problems.size(), flags.state_dir));
  }
  return OkStatus();
}

}  // namespace smv::daemon
