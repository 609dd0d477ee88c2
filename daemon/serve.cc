// serve and fsck: the only place that picks implementations (libnl, LMDB or etcd, the engine
// client) and wires them to the services.

#include <malloc.h>
#include <pthread.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <fstream>
#include <optional>
#include <thread>

#include "commands.h"
#include "common/clock.h"
#include "common/log.h"
#include "daemon/api/plugin_api.h"
#include "daemon/api/plugin_server.h"
#include "daemon/reconciler.h"
#include "daemon/state_check.h"
#include "daemon/state_lock.h"
#include "daemon/state_stores.h"
#include "driver/driver_service.h"
#include "driver/netlink/link_manager.h"
#include "driver/packet/packet_announcer.h"
#include "engine/docker_engine.h"
#include "identity/identity_service.h"
#include "ipam/etcd_store.h"
#include "ipam/ipam_service.h"
#include "ipam/node_claim.h"
#include "ipam/split_ipam.h"

namespace smv::daemon {
namespace {

Result<StateStores> OpenStores(const ServeFlags& flags) {
  return OpenStateStores(flags.state_dir, flags.db_size_mib << 20);
}

// The address book of --store: LMDB's in the state directory, or etcd's shared by several hosts.
struct AddressBook {
  std::unique_ptr<ipam::NodeClaim> claim;  // this daemon's --node-name in the fleet: revoked last
  std::unique_ptr<etcd::KvClient> client;
  std::unique_ptr<ipam::EtcdIpamStore> shared;
  std::unique_ptr<ipam::LmdbReleaseJournal> journal;  // releases etcd could not take yet, kept locally
  ipam::IpamStore* store = nullptr;
};

// A file an --etcd-* flag names, read whole.
Result<std::string> ReadFlagFile(std::string_view flag, const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in.is_open()) {
    return InvalidArgument(fmt::format("{} \"{}\": cannot open it: {}", flag, path, std::strerror(errno)));
  }
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) return InvalidArgument(fmt::format("{} \"{}\": cannot read it (a directory?)", flag, path));
  return text;
}

// How to reach the etcd members of --store; nothing for lmdb. Checked before anything is opened
// or created, so that a wrong flag leaves nothing behind.
Result<std::optional<etcd::ClientOptions>> SharedStoreClient(const ServeFlags& flags) {
  const std::vector<std::pair<std::string_view, const std::string*>> etcd_flags = {
      {"--etcd-cacert", &flags.etcd_cacert},
      {"--etcd-cert", &flags.etcd_cert},
      {"--etcd-key", &flags.etcd_key},
      {"--etcd-user", &flags.etcd_user},
      {"--etcd-password-file", &flags.etcd_password_file}};
  if (flags.store == "lmdb") {
    for (const auto& [flag, value] : etcd_flags) {
      if (!value->empty()) {
        return InvalidArgument(
            fmt::format("{} \"{}\": only with --store etcd://HOST:PORT[,...]; this daemon keeps its "
                        "address book in lmdb",
                        flag, *value));
      }
    }
    return std::optional<etcd::ClientOptions>();
  }
  Result<std::vector<etcd::Endpoint>> endpoints = etcd::ParseEndpoints(flags.store, "--store");
  if (!endpoints.ok()) return InvalidArgument(endpoints.status().message() + " (or lmdb, the default)");
  etcd::ClientOptions options{
      .endpoints = std::move(endpoints).value(),
      .names = {
          .user = "--etcd-user", .ca_file = "--etcd-cacert", .cert_file = "--etcd-cert", .key_file = "--etcd-key"}};
  if (flags.etcd_cert.empty() != flags.etcd_key.empty()) {
    return InvalidArgument(
        fmt::format("--etcd-cert \"{}\" and --etcd-key \"{}\": give both (a client certificate "
                    "and its key) or neither",
                    flags.etcd_cert, flags.etcd_key));
  }
  for (const auto& [flag, path] : etcd_flags) {
    if (flag == "--etcd-user" || path->empty()) continue;
    Result<std::string> content = ReadFlagFile(flag, *path);
    if (!content.ok()) return content.status();
    if (flag == "--etcd-password-file") {
      std::string password = *content;
      while (!password.empty() && (password.back() == '\n' || password.back() == '\r')) password.pop_back();
      if (password.empty()) {
        return InvalidArgument(
            fmt::format("--etcd-password-file \"{}\": the file is empty; want the password of "
                        "--etcd-user",
                        *path));
      }
      options.password = std::move(password);
    }
  }
  if (flags.etcd_user.empty() != flags.etcd_password_file.empty()) {
    return InvalidArgument(fmt::format("--etcd-user \"{}\" and --etcd-password-file \"{}\": give both or neither",
                                       flags.etcd_user, flags.etcd_password_file));
  }
  options.user = flags.etcd_user;
  options.tls = {.ca_file = flags.etcd_cacert, .cert_file = flags.etcd_cert, .key_file = flags.etcd_key};
  return std::optional<etcd::ClientOptions>(std::move(options));
}

Result<AddressBook> OpenAddressBook(const ServeFlags& flags, std::optional<etcd::ClientOptions> client,
                                    StateStores& stores) {
  AddressBook book;
  if (!client) {
    book.store = stores.ipam.get();
    return book;
  }
  std::string node = flags.node_name;
  if (node.empty()) {
    char host[256] = {};
    gethostname(host, sizeof host - 1);
    node = host;
  }
  book.client = std::make_unique<etcd::KvClient>(*std::move(client));
  auto shared = ipam::EtcdIpamStore::Open(*book.client, {.node = node});
  if (!shared.ok()) return shared.status();
  // One live daemon per --node-name: claimed before this one writes to the book (node_claim.h).
  auto claim = ipam::NodeClaim::Take(book.client->options(),
                                     {.node = node, .holder = ipam::ClaimHolder::ThisProcess(flags.socket)});
  if (!claim.ok()) return claim.status();
  book.claim = std::move(claim).value();
  book.shared = std::move(shared).value();
  book.shared->StartWatch();  // a mirror of the book for reloads after a refused commit
  book.store = book.shared.get();
  auto journal = ipam::LmdbReleaseJournal::Open(*stores.env);
  if (!journal.ok()) return journal.status();
  book.journal = std::move(journal).value();
  spdlog::info("address book shared in etcd {} as node \"{}\"{}{}", flags.store, node,
               flags.etcd_cacert.empty() && flags.etcd_cert.empty() ? "" : " over TLS",
               flags.etcd_user.empty() ? "" : fmt::format(" as etcd user \"{}\"", flags.etcd_user));
  return book;
}

// The one writer of a state directory (state_lock.h): its lock, held until serve returns, and the
// owner tag of its links. Refused while another daemon serves the socket or holds the directory.
struct OneWriter {
  std::unique_ptr<StateLock> lock;
  std::string link_owner_tag;
};

Result<OneWriter> TakeStateDirectory(const ServeFlags& flags) {
  SMV_RETURN_IF_ERROR(RefuseIfSocketServed(flags.socket));
  auto lock = StateLock::Acquire(flags.state_dir, flags.socket);
  if (!lock.ok()) return lock.status();
  auto instance_id = LoadOrCreateInstanceId(flags.state_dir);
  if (!instance_id.ok()) return instance_id.status();
  return OneWriter{std::move(lock).value(), LinkOwnerTag(*instance_id)};
}

// Blocks SIGTERM/SIGINT in every thread started after this, so only the waiter thread of
// ServeUntilSignal receives them (its sigwait).
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
  std::jthread waiter([&stop_signals, &server](const std::stop_token& stop) {
    int signal = 0;
    sigwait(&stop_signals, &signal);
    if (stop.stop_requested()) return;  // woken below: Serve() ended on its own
    spdlog::info("stopping signal={}", signal);
    server.Stop();
  });
  Status served = server.Serve();
  // Serve() can also end on its own; a blocked sigwait sees no stop request: wake it with a
  // signal (the jthread joins it when it goes out of scope).
  waiter.request_stop();
  pthread_kill(waiter.native_handle(), SIGTERM);
  return served;
}

// The services on opened stores and links, in dependency order.
struct Services {
  std::unique_ptr<ipam::IpamService> book;        // --store's: this host's, or the fleet's
  std::unique_ptr<ipam::IpamService> local_book;  // beside a shared book: --ipam-opt scope=local pools
  std::unique_ptr<ipam::SplitIpam> split;
  ipam::IpamApi* ipam = nullptr;                       // what the edge calls: `book`, or `split` over both
  std::unique_ptr<driver::PacketAnnouncer> announcer;  // on the heap: Services is moved
  // Outlives the schedule, which asks it.
  std::unique_ptr<driver::EngineAnnounces> engine_announces;
  std::unique_ptr<driver::AnnounceSchedule> announce;  // outlives the driver, which uses it
  std::unique_ptr<driver::DriverService> driver;
  std::unique_ptr<driver::LinkReaper> reaper;
};

Result<Services> CreateServices(const ServeFlags& flags, StateStores& stores, AddressBook& book,
                                nl::LinkManager& links) {
  Services s;
  auto ipam = ipam::IpamService::Create(*book.store, nullptr, book.journal.get());
  if (!ipam.ok()) return ipam.status();
  s.book = std::move(ipam).value();
  s.ipam = s.book.get();
  if (book.shared) {
    auto local = ipam::IpamService::Create(*stores.ipam);
    if (!local.ok()) return local.status();
    s.local_book = std::move(local).value();
    s.split = std::make_unique<ipam::SplitIpam>(*s.book, *s.local_book);
    s.ipam = s.split.get();
  }
  auto driver = driver::DriverService::Create(links, *stores.networks);
  if (!driver.ok()) return driver.status();
  s.driver = std::move(driver).value();
  s.driver->SetAllowedParents(flags.allowed_parents);
  s.announcer = std::make_unique<driver::PacketAnnouncer>();
  s.announce = std::make_unique<driver::AnnounceSchedule>(*s.announcer);
  // Docker >= 28 sends its own IPv6 announcements (engine_announces.h); its version is asked on
  // the first announcement, by a client of its own that lives as long as the schedule.
  auto engine = engine::DockerEngine::Create(flags.docker_host);
  if (!engine.ok()) return engine.status();
  s.engine_announces = std::make_unique<driver::EngineAnnounces>(
      [e = std::shared_ptr<engine::DockerEngine>(std::move(engine).value())] {
        return e->ServerVersion(engine::Millis(1000));
      },
      driver::LinkMac);
  s.announce->LeaveToEngine(s.engine_announces.get());
  s.driver->SetAnnounceSchedule(s.announce.get());
  auto reaper_links = nl::LinkManager::Open();  // its own netlink socket: see link_reaper.h
  if (!reaper_links.ok()) return reaper_links.status();
  (*reaper_links)->SetOwnerTag(links.owner_tag());
  s.reaper = std::make_unique<driver::LinkReaper>(std::move(reaper_links).value());
  return s;
}

}  // namespace

Status Serve(const ServeFlags& flags) {
  const auto started = SteadyClock::now();
  auto ms_since = [](SteadyClock::time_point t) { return static_cast<int64_t>(SecondsSince(t) * 1000); };
  SMV_RETURN_IF_ERROR(InitLogging(flags.log_level));
  if (!flags.metrics_listen.empty()) {  // a wrong value is refused before anything is opened
    if (auto listen = api::MetricsServer::ParseListen(flags.metrics_listen); !listen.ok()) return listen.status();
  }
  const sigset_t stop_signals = BlockStopSignals();
  // Start-up order: open the store, reconcile the kernel with it, then listen.
  auto shared_client = SharedStoreClient(flags);
  if (!shared_client.ok()) return shared_client.status();
  auto writer = TakeStateDirectory(flags);  // before anything is opened or changed
  if (!writer.ok()) return writer.status();
  auto stores = OpenStores(flags);
  if (!stores.ok()) return stores.status();
  auto book = OpenAddressBook(flags, std::move(shared_client).value(), *stores);
  if (!book.ok()) return book.status();
  auto links = nl::LinkManager::Open();
  if (!links.ok()) return links.status();
  (*links)->SetNetSysctlDir(flags.net_sysctl_dir);
  (*links)->SetOwnerTag(writer->link_owner_tag);  // so that other instances leave our links alone
  auto services = CreateServices(flags, *stores, *book, **links);
  if (!services.ok()) return services.status();
  const auto loaded_ms = ms_since(started);
  auto engine = engine::DockerEngine::Create(flags.docker_host);
  if (!engine.ok()) return engine.status();
  identity::IdentityService identity(**engine, *services->ipam, *services->driver);
  Reconciler reconciler(**engine, *services->ipam, *services->driver, identity,
                        {.interval = std::chrono::seconds(flags.reconcile_seconds),
                         .stale_after = std::chrono::seconds(flags.stale_after_seconds)});
  reconciler.AtStart();
  // Start-up has read the whole store and built its indexes: give back what only the loading
  // needed (the file's pages, the parsed records) so that a large state costs its indexes only.
  stores->env->DropMappedPages();
  malloc_trim(0);
  services->driver->SetLinkReaper(services->reaper.get());  // after AtStart, which deletes synchronously

  api::PluginApi api(*services->driver, *services->ipam, &identity, engine->get());
  api.SetMacIdentity(flags.mac_identity);
  api.SetEngineAddress(flags.docker_host);
  std::unique_ptr<api::MetricsServer> metrics_server;
  if (!flags.metrics_listen.empty()) {
    auto listening = api::MetricsServer::Listen(flags.metrics_listen, api);
    if (!listening.ok()) return listening.status();
    metrics_server = std::move(listening).value();
  }
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
  std::string summary;
  Result<std::vector<std::string>> problems = FsckProblems(flags, summary);
  if (!problems.ok()) return problems.status();
  std::printf("%s\n", summary.c_str());
  for (const std::string& p : *problems) std::printf("problem: %s\n", p.c_str());
  if (!problems->empty()) {
    return FailedPrecondition(fmt::format("{} problem(s) in {}{}", problems->size(), flags.state_dir,
                                          flags.store != "lmdb" ? " and the shared book " + flags.store : ""));
  }
  return OkStatus();
}

Result<std::vector<std::string>> FsckProblems(const ServeFlags& flags, std::string& summary,
                                              std::vector<ipam::UndecodableKey>* undecodable) {
  auto shared_client = SharedStoreClient(flags);
  if (!shared_client.ok()) return shared_client.status();
  auto stores = OpenStores(flags);
  if (!stores.ok()) return stores.status();
  Result<ipam::IpamSnapshot> ipam = Internal("no address book");
  std::vector<std::string> unreadable;  // shared book records every load skips
  if (*shared_client) {
    // Read at one revision, without the fence a daemon's load writes: running daemons are not
    // disturbed, and nothing is written.
    etcd::KvClient client(**shared_client);
    auto book = ipam::EtcdIpamStore::Open(client, {.node = "fsck", .read_only = true});
    if (!book.ok()) return book.status();
    ipam = (*book)->Load();
    for (ipam::UndecodableKey& bad : (*book)->undecodable_keys()) {
      if (undecodable != nullptr) {
        undecodable->push_back(std::move(bad));
        continue;
      }
      unreadable.push_back(fmt::format(
          "undecodable record {}: {}; every node skips it (look at it with: {}; delete it, as read, with: {})",
          ipam::PrintableKey(bad.key), ipam::PrintableWhy(bad.why), ipam::EtcdctlGetCommand(bad),
          ipam::EtcdctlDeleteCommand(bad)));
    }
    // Beside the fleet's book, this host's own (--ipam-opt scope=local pools), as the daemon shows both.
    if (ipam.ok()) {
      auto local = stores->ipam->Load();
      if (!local.ok()) return local.status();
      ipam = ipam::MergeLocalBook(std::move(ipam).value(), std::move(local).value());
    }
  } else {
    ipam = stores->ipam->Load();
  }
  if (!ipam.ok()) return ipam.status();
  auto networks = stores->networks->Load();
  if (!networks.ok()) return networks.status();
  std::vector<std::string> problems = CheckState(*ipam, *networks);
  problems.insert(problems.end(), unreadable.begin(), unreadable.end());
  summary = fmt::format("pools={} leases={} reservations={} networks={} endpoints={} problems={}", ipam->pools.size(),
                        ipam->leases.size(), ipam->reservations.size(), networks->networks.size(),
                        networks->endpoints.size(), problems.size());
  return problems;
}

}  // namespace smv::daemon
