#include "daemon/plugin_registration.h"

#include <gtest/gtest.h>

namespace smv::daemon {
namespace {

using engine::EnginePlugins;

constexpr const char* kLegacySocket = "/run/docker/plugins/static-macvlan.sock";
const std::vector<std::string> kBuiltins = {"bridge", "host", "ipvlan", "macvlan", "null", "overlay"};

TEST(PluginRegistrationTest, ALegacyPluginIsRegisteredOnceANetworkUsesIt) {
  EnginePlugins plugins{kBuiltins, {}};
  plugins.network_drivers.push_back("static-macvlan");
  const Registration r = JudgeRegistration(plugins, kLegacySocket);
  EXPECT_TRUE(r.ok) << r.detail;
  EXPECT_EQ(r.detail, "dockerd lists static-macvlan among its network drivers");
}

TEST(PluginRegistrationTest, ALegacySocketInTheDiscoveryDirectoryIsFoundBeforeAnyNetwork) {
  const Registration r = JudgeRegistration({kBuiltins, {}}, kLegacySocket);
  EXPECT_TRUE(r.ok) << r.detail;
  EXPECT_NE(r.detail.find("finds the driver static-macvlan at " + std::string(kLegacySocket)), std::string::npos)
      << r.detail;
}

TEST(PluginRegistrationTest, ASocketWhereDockerdDoesNotLookFailsWithTheOptionThatFixesIt) {
  const Registration r = JudgeRegistration({kBuiltins, {}}, "/tmp/smv/static-macvlan.sock");
  EXPECT_FALSE(r.ok);
  EXPECT_NE(r.detail.find("listens on /tmp/smv/static-macvlan.sock"), std::string::npos) << r.detail;
  EXPECT_EQ(r.fix, "static-macvlan serve --socket /run/docker/plugins/static-macvlan.sock");
  // A plugin in a subdirectory is a managed plugin's, not one dockerd discovers.
  EXPECT_FALSE(JudgeRegistration({kBuiltins, {}}, "/run/docker/plugins/x/y/static-macvlan.sock").ok);
}

TEST(PluginRegistrationTest, AnEnabledManagedPluginIsFoundByTheIdInItsSocketPath) {
  EnginePlugins plugins{kBuiltins, {{"abc123", "smv:2.0", true}, {"def456", "other:latest", true}}};
  plugins.network_drivers.push_back("smv:2.0");
  const Registration r = JudgeRegistration(plugins, "/run/docker/plugins/abc123/static-macvlan.sock");
  EXPECT_TRUE(r.ok) << r.detail;
  EXPECT_EQ(r.detail, "dockerd has managed plugin smv:2.0 enabled among its network drivers");
}

TEST(PluginRegistrationTest, AnEnabledManagedPluginThatIsNoNetworkDriverFails) {
  const EnginePlugins plugins{kBuiltins, {{"abc123", "static-macvlan:latest", true}}};
  const Registration r = JudgeRegistration(plugins, "/run/docker/plugins/abc123/static-macvlan.sock");
  EXPECT_FALSE(r.ok) << r.detail;
  EXPECT_EQ(r.fix, "docker plugin inspect static-macvlan:latest   (its config must declare docker.networkdriver/1.0)");
}

TEST(PluginRegistrationTest, ADisabledManagedPluginFailsWithTheEnableCommand) {
  const EnginePlugins plugins{kBuiltins, {{"abc123", "registry.example/static-macvlan:1.0", false}}};
  // Disabled, its socket is gone and doctor may be pointed at the default path: found by name.
  const Registration r = JudgeRegistration(plugins, kLegacySocket);
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.detail,
            "managed plugin registry.example/static-macvlan:1.0 is installed but disabled: dockerd sends "
            "it nothing");
  EXPECT_EQ(r.fix, "docker plugin enable registry.example/static-macvlan:1.0");
}

TEST(PluginRegistrationTest, OurDriverNamesAreTheSocketsAndOurManagedPluginsNotOthers) {
  EnginePlugins plugins{kBuiltins, {{"abc123", "smv:latest", true}, {"def456", "weaveworks/net-plugin:2.8", true}}};
  EXPECT_EQ(OurDriverNames(plugins, "/run/docker/plugins/abc123/static-macvlan.sock"),
            (std::set<std::string>{"smv", "smv:latest", "static-macvlan"}));
  EXPECT_EQ(OurDriverNames({kBuiltins, {}}, "/run/docker/plugins/vlan-a.sock"),
            (std::set<std::string>{"static-macvlan", "vlan-a"}));
}

}  // namespace
}  // namespace smv::daemon
