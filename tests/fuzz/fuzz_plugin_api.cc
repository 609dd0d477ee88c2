// libFuzzer target: any body on any plugin path must give a JSON answer and never crash, leak or
// hit undefined behaviour. The first input byte picks the path; the rest is the body.

#include <cstddef>
#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "daemon/api/plugin_api.h"
#include "ipam/ipam_service.h"
#include "tests/support/fake_link_ops.h"
#include "tests/support/memory_stores.h"

namespace {

const char* const kPaths[] = {"/Plugin.Activate",
                              "/NetworkDriver.GetCapabilities",
                              "/NetworkDriver.CreateNetwork",
                              "/NetworkDriver.DeleteNetwork",
                              "/NetworkDriver.CreateEndpoint",
                              "/NetworkDriver.DeleteEndpoint",
                              "/NetworkDriver.EndpointOperInfo",
                              "/NetworkDriver.Join",
                              "/NetworkDriver.Leave",
                              "/IpamDriver.GetCapabilities",
                              "/IpamDriver.RequestPool",
                              "/IpamDriver.ReleasePool",
                              "/IpamDriver.RequestAddress",
                              "/IpamDriver.ReleaseAddress",
                              "/StaticMacvlan.ListReservations",
                              "/StaticMacvlan.Reserve",
                              "/StaticMacvlan.Release",
                              "/Unknown.Path"};

struct World {
  World() {
    spdlog_off();
    links.AddExisting({.name = "eth1", .kind = "veth", .up = true});
    driver = std::move(smv::driver::DriverService::Create(links, net_store).value());
    ipam = std::move(smv::ipam::IpamService::Create(ipam_store).value());
    api = std::make_unique<smv::api::PluginApi>(*driver, *ipam);
  }
  static void spdlog_off();
  smv::testing::FakeLinkOps links;
  smv::testing::MemoryNetworkStore net_store;
  smv::testing::MemoryIpamStore ipam_store;
  std::unique_ptr<smv::driver::DriverService> driver;
  std::unique_ptr<smv::ipam::IpamService> ipam;
  std::unique_ptr<smv::api::PluginApi> api;
};

}  // namespace

#include <spdlog/spdlog.h>
void World::spdlog_off() { spdlog::set_level(spdlog::level::off); }

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static World* world = new World();  // state carries over between inputs, as in a daemon
  if (size == 0) return 0;
  const char* path = kPaths[data[0] % (sizeof kPaths / sizeof kPaths[0])];
  const std::string body(reinterpret_cast<const char*>(data + 1), size - 1);
  auto [status, out] = world->api->Dispatch(path, body);
  if (nlohmann::json::parse(out, nullptr, false).is_discarded()) __builtin_trap();  // always JSON
  // 400: a body too deeply nested, or none where an object is wanted.
  if (status != 200 && status != 400 && status != 404 && status != 500) __builtin_trap();
  return 0;
}
