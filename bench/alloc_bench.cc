// P3 in-process: RequestAddress + ReleaseAddress on a /16 at 0, 50, 90 and 99 % occupancy
// (IpamService on a store that keeps nothing: the allocator and service cost without disk I/O).

#include <benchmark/benchmark.h>
#include <spdlog/spdlog.h>

#include "bench/discarding_store.h"
#include "ipam/ipam_service.h"

namespace {

void BM_RequestReleaseAtOccupancy(benchmark::State& state) {
  spdlog::set_level(spdlog::level::off);
  smv::bench::DiscardingStore store;
  auto ipam = std::move(smv::ipam::IpamService::Create(store).value());
  const std::string pool = ipam->RequestPool({"l", "198.18.0.0/16", "", {}, false})->pool_id;
  const int usable = 65534;
  const int taken = static_cast<int>(usable * state.range(0) / 100);
  for (int i = 0; i < taken; ++i) {
    // Half the occupancy are name reservations, half anonymous leases: both block allocation.
    const std::string name = (i % 2 == 0) ? "c" + std::to_string(i) : "";
    auto a = ipam->RequestAddress({pool, "", false, name, "", ""});
    if (!a.ok()) state.SkipWithError(a.status().message().c_str());
    if (!name.empty()) (void)ipam->ReleaseAddress(pool, a->substr(0, a->find('/')));
  }
  for (auto _ : state) {
    auto a = ipam->RequestAddress({pool, "", false, "", "", ""});
    if (!a.ok()) state.SkipWithError(a.status().message().c_str());
    benchmark::DoNotOptimize(a);
    (void)ipam->ReleaseAddress(pool, a->substr(0, a->find('/')));
  }
  state.counters["occupancy_pct"] = static_cast<double>(state.range(0));
}
BENCHMARK(BM_RequestReleaseAtOccupancy)->Arg(0)->Arg(50)->Arg(90)->Arg(99)->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();
