// Benchmark helper for bench/run.sh:
//   bench_tool fill STATE_DIR SUBNET RESERVATIONS NETWORKS   write a state as the daemon would (offline)
//   bench_tool inprocess OCCUPANCY_PCT N                    in-process p50/p99 on a /16
//   bench_tool latency N SOCKET=POOL_ID...           N RequestAddress+ReleaseAddress pairs to each
//                                                     target, in turn: a p50/p99 line (µs) per target
//   bench_tool throughput SOCKET POOL_ID CLIENTS SECONDS   allocations/s, each durable before reply
//   bench_tool startup STATE_DIR                      start-up phases of a state (profiling P5)
//   bench_tool cycles SOCKET N                        N network create/remove cycles as dockerd sends
//                                                     them, each with one container start and stop

#include <fmt/format.h>
#include <httplib.h>
#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "bench/discarding_store.h"
#include "daemon/state_stores.h"
#include "ipam/ipam_service.h"

namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

// P3 in process: p50/p99 of RequestAddress+ReleaseAddress with `occupancy_pct` of a /16 taken.
int InProcess(int occupancy_pct, int n) {
  smv::bench::DiscardingStore store;
  auto ipam = std::move(smv::ipam::IpamService::Create(store).value());
  const std::string pool = ipam->RequestPool({"l", "198.18.0.0/16", "", {}, false})->pool_id;
  const int taken = 65534 * occupancy_pct / 100;
  for (int i = 0; i < taken; ++i) (void)ipam->RequestAddress({pool, "", false, "", "", ""});
  std::vector<double> us;
  for (int i = 0; i < n; ++i) {
    const auto t0 = Clock::now();
    auto a = ipam->RequestAddress({pool, "", false, "", "", ""});
    (void)ipam->ReleaseAddress(pool, a->substr(0, a->find('/')));
    us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
  }
  std::sort(us.begin(), us.end());
  std::printf("p50_us=%.2f p99_us=%.2f\n", us[us.size() / 2], us[us.size() * 99 / 100]);
  return 0;
}

int Fill(const std::string& dir, const std::string& subnet, int reservations, int networks) {
  auto stores = smv::daemon::OpenStateStores(dir, size_t{1} << 30);
  if (!stores.ok()) return 1;
  smv::ipam::LmdbIpamStore* ipam_store = stores->ipam.get();
  smv::driver::LmdbNetworkStore* net_store = stores->networks.get();
  // One big pool for the reservations, written in one batch.
  smv::ipam::PoolRequest big{"l", subnet, "", {}, false};
  smv::ipam::PoolConfig config = *smv::ipam::ParsePoolRequest(big);
  smv::ipam::IpamBatch batch;
  batch.put_pools.push_back({config, 1});
  for (int i = 0; i < reservations; ++i) {
    smv::IpAddress ip(smv::Family::kV4, config.subnet.Network().value() + 1 + static_cast<unsigned>(i));
    batch.put_reservations.push_back({config.id, "c-" + std::to_string(i), ip, "02:42:00:00:00:01", 1, 0});
  }
  if (auto s = ipam_store->Apply(batch); !s.ok()) {
    std::fprintf(stderr, "%s\n", s.message().c_str());
    return 1;
  }
  smv::driver::DriverBatch nets;
  for (int n = 0; n < networks; ++n) {
    smv::Prefix subnet(smv::IpAddress(smv::Family::kV4, (uint32_t{100} << 24) | (uint32_t(n) << 8)), 24);
    nets.put_networks.push_back({"net" + std::to_string(n), {{"parent", "eth1"}}, {{subnet, std::nullopt}}, {}, false});
  }
  if (auto s = net_store->Apply(nets); !s.ok()) {
    std::fprintf(stderr, "%s\n", s.message().c_str());
    return 1;
  }
  std::printf("pool=%s\n", config.id.c_str());
  return 0;
}

httplib::Client Connect(const std::string& socket) {
  httplib::Client c(socket);
  c.set_address_family(AF_UNIX);
  c.set_keep_alive(true);
  return c;
}

bool Allocate(httplib::Client& c, const std::string& pool, std::string* address) {
  auto r =
      c.Post("/IpamDriver.RequestAddress", json{{"PoolID", pool}, {"Address", ""}, {"Options", nullptr}}.dump(), "");
  if (!r || r->status != 200) return false;
  std::string a = json::parse(r->body)["Address"];
  *address = a.substr(0, a.find('/'));
  return true;
}

bool Release(httplib::Client& c, const std::string& pool, const std::string& address) {
  auto r = c.Post("/IpamDriver.ReleaseAddress", json{{"PoolID", pool}, {"Address", address}}.dump(), "");
  return r && r->status == 200;
}

// P3 over the socket. Targets are "SOCKET=POOL_ID", one daemon each (one per occupancy); the pairs
// go to them in turn, so a drift of the disk's fsync latency during the run (±10 % between
// back-to-back runs here) falls on every occupancy alike instead of on whichever ran last.
int Latency(int n, const std::vector<std::string>& targets) {
  struct Target {
    httplib::Client client;
    std::string pool;
    std::vector<double> us;
  };
  std::vector<Target> ts;
  for (const std::string& t : targets) {
    const size_t eq = t.find('=');
    if (eq == std::string::npos) {
      std::fprintf(stderr, "latency: target '%s' is not SOCKET=POOL_ID\n", t.c_str());
      return 2;
    }
    ts.push_back({Connect(t.substr(0, eq)), t.substr(eq + 1), {}});
  }
  for (int i = 0; i < n; ++i) {
    for (Target& t : ts) {
      std::string a;
      const auto t0 = Clock::now();
      if (!Allocate(t.client, t.pool, &a) || !Release(t.client, t.pool, a)) {
        std::fprintf(stderr, "request failed\n");
        return 1;
      }
      t.us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
    }
  }
  for (Target& t : ts) {
    std::sort(t.us.begin(), t.us.end());
    std::printf("p50_us=%.0f p99_us=%.0f\n", t.us[t.us.size() / 2], t.us[t.us.size() * 99 / 100]);
  }
  return 0;
}

int Throughput(const std::string& socket, const std::string& pool, int clients, double seconds) {
  std::atomic<long> done{0};
  std::atomic<bool> stop{false};
  std::vector<std::thread> threads;
  const auto t0 = Clock::now();
  for (int i = 0; i < clients; ++i) {
    threads.emplace_back([&] {
      httplib::Client c = Connect(socket);
      std::vector<std::string> held;
      while (!stop) {
        std::string a;
        if (Allocate(c, pool, &a)) {
          ++done;
          held.push_back(a);
        }
        if (held.size() > 50) {
          for (auto& h : held) Release(c, pool, h);
          held.clear();
        }
      }
      for (auto& h : held) Release(c, pool, h);
    });
  }
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  stop = true;
  const double elapsed = std::chrono::duration<double>(Clock::now() - t0).count();
  for (auto& t : threads) t.join();
  std::printf("clients=%d allocations_per_s=%.0f\n", clients, done / elapsed);
  return 0;
}

// One call as dockerd makes it; false (and a message) unless it answers 200.
bool Call(httplib::Client& c, const std::string& path, const json& body, json* out = nullptr) {
  auto r = c.Post(("/" + path).c_str(), body.dump() + "\n", "");
  if (!r || r->status != 200) {
    std::fprintf(stderr, "%s: %s\n", path.c_str(), r ? r->body.c_str() : httplib::to_string(r.error()).c_str());
    return false;
  }
  if (out != nullptr) *out = json::parse(r->body, nullptr, false);
  return true;
}

// The soak's second half: network create, a container start and stop, network remove, as
// dockerd 20.10 sends them (docs/plugin-protocol.md), N times with fresh ids.
int Cycles(const std::string& socket, int n) {
  httplib::Client c = Connect(socket);
  for (int i = 0; i < n; ++i) {
    const std::string net = fmt::format("{:064x}", 0x5000000 + i);
    const std::string ep = fmt::format("{:064x}", 0xe000000 + i);
    json pool, gw, addr;
    bool ok =
        Call(c, "IpamDriver.RequestPool",
             {{"AddressSpace", "static-macvlan-local"},
              {"Pool", "198.18.0.0/24"},
              {"SubPool", ""},
              {"Options", json::object()},
              {"V6", false}},
             &pool) &&
        Call(c, "IpamDriver.RequestAddress",
             {{"PoolID", pool["PoolID"]},
              {"Address", ""},
              {"Options", {{"RequestAddressType", "com.docker.network.gateway"}}}},
             &gw) &&
        Call(c, "NetworkDriver.CreateNetwork",
             {{"NetworkID", net},
              {"Options", {{"com.docker.network.generic", {{"parent", "eth1"}}}}},
              {"IPv4Data",
               {{{"AddressSpace", "static-macvlan-local"}, {"Pool", "198.18.0.0/24"}, {"Gateway", gw["Address"]}}}},
              {"IPv6Data", json::array()}});
    const std::string name = fmt::format("cycle-{}", i % 50);
    ok = ok &&
         Call(c, "IpamDriver.RequestAddress",
              {{"PoolID", pool["PoolID"]}, {"Address", ""}, {"Options", {{"com.docker.network.endpoint.name", name}}}},
              &addr) &&
         Call(c, "NetworkDriver.CreateEndpoint",
              {{"NetworkID", net},
               {"EndpointID", ep},
               {"Interface", {{"Address", addr["Address"]}, {"AddressIPv6", ""}, {"MacAddress", ""}}}}) &&
         Call(c, "NetworkDriver.Join",
              {{"NetworkID", net}, {"EndpointID", ep}, {"SandboxKey", "/var/run/docker/netns/soak"}}) &&
         Call(c, "NetworkDriver.Leave", {{"NetworkID", net}, {"EndpointID", ep}}) &&
         Call(c, "NetworkDriver.DeleteEndpoint", {{"NetworkID", net}, {"EndpointID", ep}});
    const auto bare = [](const json& a) {
      std::string s = a["Address"];
      return s.substr(0, s.find('/'));
    };
    ok = ok && Call(c, "IpamDriver.ReleaseAddress", {{"PoolID", pool["PoolID"]}, {"Address", bare(addr)}}) &&
         Call(c, "IpamDriver.ReleaseAddress", {{"PoolID", pool["PoolID"]}, {"Address", bare(gw)}}) &&
         Call(c, "IpamDriver.ReleasePool", {{"PoolID", pool["PoolID"]}}) &&
         Call(c, "NetworkDriver.DeleteNetwork", {{"NetworkID", net}});
    if (!ok) {
      std::fprintf(stderr, "cycle %d failed\n", i);
      return 1;
    }
  }
  std::printf("cycles=%d\n", n);
  return 0;
}

// Where start-up time goes with a state written by `fill`: open, each store's Load, the services.
int Startup(const std::string& dir) {
  auto ms = [](Clock::time_point since) {
    return std::chrono::duration<double, std::milli>(Clock::now() - since).count();
  };
  auto t = Clock::now();
  auto stores = smv::daemon::OpenStateStores(dir, size_t{1} << 30);
  if (!stores.ok()) return 1;
  std::printf("open_ms=%.1f", ms(t));
  t = Clock::now();
  auto snapshot = stores->ipam->Load();
  std::printf(" ipam_load_ms=%.1f", ms(t));
  t = Clock::now();
  auto ipam = smv::ipam::IpamService::Create(*stores->ipam);
  std::printf(" ipam_service_ms=%.1f (load + indexes) reservations=%zu\n", ms(t), snapshot->reservations.size());
  return ipam.ok() ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  spdlog::set_level(spdlog::level::off);
  std::signal(SIGPIPE, SIG_IGN);  // the soak SIGKILLs the daemon under running clients
  const std::vector<std::string> a(argv + 1, argv + argc);
  if (a.size() == 5 && a[0] == "fill") return Fill(a[1], a[2], std::stoi(a[3]), std::stoi(a[4]));
  if (a.size() == 3 && a[0] == "inprocess") return InProcess(std::stoi(a[1]), std::stoi(a[2]));
  if (a.size() >= 3 && a[0] == "latency") return Latency(std::stoi(a[1]), {a.begin() + 2, a.end()});
  if (a.size() == 2 && a[0] == "startup") return Startup(a[1]);
  if (a.size() == 3 && a[0] == "cycles") return Cycles(a[1], std::stoi(a[2]));
  if (a.size() == 5 && a[0] == "throughput") return Throughput(a[1], a[2], std::stoi(a[3]), std::stod(a[4]));
  std::fprintf(stderr, "usage: see the comment at the top of bench/bench_tool.cc\n");
  return 2;
}
