#include "driver/network_options.h"

#include <gtest/gtest.h>

namespace smv::driver {
namespace {

using Opts = std::map<std::string, std::string>;

TEST(NetworkOptionsTest, DefaultsAndVlanName) {
  Result<NetworkOptions> o = ParseNetworkOptions({{"parent", "eth1"}, {"vlan", "228"}});
  ASSERT_TRUE(o.ok()) << o.status().message();
  EXPECT_EQ(o->parent, "eth1");
  EXPECT_EQ(*o->vlan_id, 228);
  EXPECT_EQ(o->vlan_link_name, "eth1.228");
  EXPECT_EQ(o->MacvlanParent(), "eth1.228");
  EXPECT_EQ(o->mode, MacvlanMode::kBridge);
  EXPECT_TRUE(o->promisc);
  EXPECT_TRUE(o->default_route);
  EXPECT_FALSE(o->mtu.has_value());
}

TEST(NetworkOptionsTest, BuiltInDriverParentForm) {
  Result<NetworkOptions> o = ParseNetworkOptions({{"parent", "eth1.228"}});
  ASSERT_TRUE(o.ok());
  EXPECT_EQ(o->parent, "eth1");
  EXPECT_EQ(*o->vlan_id, 228);
  EXPECT_EQ(o->vlan_link_name, "eth1.228");
  EXPECT_TRUE(ParseNetworkOptions({{"parent", "eth1.228"}, {"vlan", "228"}}).ok());
}

TEST(NetworkOptionsTest, LongVlanNameIsShortAndStable) {
  Result<NetworkOptions> o = ParseNetworkOptions({{"parent", "enp0s31f6abcd"}, {"vlan", "4000"}});
  ASSERT_TRUE(o.ok());
  EXPECT_LE(o->vlan_link_name.size(), 15u);
  EXPECT_EQ(o->vlan_link_name, VlanLinkName("enp0s31f6abcd", 4000));
  EXPECT_NE(o->vlan_link_name, VlanLinkName("enp0s31f6abce", 4000));
  EXPECT_EQ(ParseNetworkOptions({{"parent", "eth1"}, {"vlan", "5"}, {"vlan_name", "up5"}})->vlan_link_name, "up5");
}

TEST(NetworkOptionsTest, ModesAliasPromiscMtuRoutes) {
  Result<NetworkOptions> o = ParseNetworkOptions(
      {{"parent", "eth1"},
       {"mode", "vepa"},
       {"promisc", "off"},
       {"mtu", "1400"},
       {"default_route", "off"},
       {"routes", "10.254.0.0/16 via 169.254.1.1; 198.51.100.0/25, 2001:db8:9::/48 via 2001:db8::1"}});
  ASSERT_TRUE(o.ok()) << o.status().message();
  EXPECT_EQ(o->mode, MacvlanMode::kVepa);
  EXPECT_FALSE(o->promisc);
  EXPECT_EQ(*o->mtu, 1400u);
  EXPECT_FALSE(o->default_route);
  ASSERT_EQ(o->routes.size(), 3u);
  EXPECT_EQ(o->routes[0].via->ToString(), "169.254.1.1");
  EXPECT_FALSE(o->routes[1].via.has_value());
  EXPECT_EQ(o->routes[2].destination.ToString(), "2001:db8:9::/48");
  for (MacvlanMode m : {MacvlanMode::kBridge, MacvlanMode::kPrivate, MacvlanMode::kVepa, MacvlanMode::kPassthru}) {
    EXPECT_EQ(MacvlanModeFromName(MacvlanModeName(m)), m);
  }
}

TEST(NetworkOptionsTest, DockerOwnKeysAreIgnored) {
  EXPECT_TRUE(ParseNetworkOptions({{"parent", "eth1"}, {"com.docker.network.whatever", "1"}}).ok());
}

TEST(NetworkOptionsTest, BadValuesNameOptionValueAndExample) {
  struct Case {
    Opts opts;
    const char* text;
  };
  const Case cases[] = {
      {{}, "option \"parent\" is required"},
      {{{"vlan", "10"}}, "option \"parent\" is required"},
      {{{"parent", "eth1"}, {"vlan", "0"}},
       "invalid value \"0\" for option \"vlan\": want a number from 1 to 4094 (example: -o vlan=228)"},
      {{{"parent", "eth1"}, {"vlan", "4095"}}, "invalid value \"4095\" for option \"vlan\""},
      {{{"parent", "eth1"}, {"vlan", "x"}}, "invalid value \"x\" for option \"vlan\""},
      {{{"parent", "eth1"}, {"vlan", "-1"}}, "invalid value \"-1\" for option \"vlan\""},
      {{{"parent", "eth1"}, {"macvlan_mode", "bridged"}}, "want bridge, private, vepa or passthru"},
      {{{"parent", "eth1"}, {"mode", "l2"}}, "invalid value \"l2\" for option \"mode\""},
      {{{"parent", "eth1"}, {"promisc", "maybe"}}, "invalid value \"maybe\" for option \"promisc\": want on or off"},
      {{{"parent", "eth1"}, {"mtu", "50"}}, "invalid value \"50\" for option \"mtu\""},
      {{{"parent", "eth1"}, {"mtu", "1500x"}}, "invalid value \"1500x\" for option \"mtu\""},
      {{{"parent", "lo"}}, "loopback"},
      {{{"parent", "averyveryverylongname0"}}, "1 to 15 characters"},
      {{{"parent", "eth/1"}}, "invalid value \"eth/1\" for option \"parent\""},
      {{{"parent", "eth 1"}}, "invalid value \"eth 1\" for option \"parent\""},
      {{{"parent", "eth1.5000"}}, "VLAN id from 1 to 4094"},
      // Fuzzing regression: the built-in form's whole name becomes the VLAN link's name.
      {{{"parent", "outus=10.908.0.3232"}}, "invalid value \"outus=10.908.0.3232\" for option \"parent\""},
      {{{"parent", "eth1.228"}, {"vlan", "229"}}, "give the VLAN once"},
      {{{"parent", "eth1"}, {"vlan_name", "x"}}, "needs option \"vlan\""},
      {{{"parent", "eth1"}, {"vlan", "5"}, {"vlan_name", "a/b"}}, "invalid value \"a/b\" for option \"vlan_name\""},
      {{{"parent", "eth1"}, {"routes", "10.0.0.0/8 via"}}, "invalid value"},
      {{{"parent", "eth1"}, {"routes", "10.0.0.1/8"}}, "for a /8 that is 10.0.0.0/8"},
      {{{"parent", "eth1"}, {"routes", "10.0.0.0/8 via 2001:db8::1"}}, "same family"},
      {{{"parent", "eth1"}, {"routes", ";"}}, "invalid value \";\" for option \"routes\""},
      {{{"parent", "eth1"}, {"default_route", "2"}}, "option \"default_route\""},
      {{{"parent", "eth1"}, {"vlna", "5"}}, "unknown option \"vlna\" (known: parent, vlan,"},
      {{{"parent", "eth1"}, {"com.docker.network.advertise_addr_nmsgs", "11"}},
       "invalid value \"11\" for option \"com.docker.network.advertise_addr_nmsgs\": want a number of "
       "announcements from 0 (none) to 10"},
      {{{"parent", "eth1"}, {"com.docker.network.advertise_addr_nmsgs", "-1"}}, "from 0 (none) to 10"},
      {{{"parent", "eth1"}, {"com.docker.network.advertise_addr_ms", "50"}},
       "invalid value \"50\" for option \"com.docker.network.advertise_addr_ms\": want milliseconds between "
       "announcements, from 100 to 2000"},
      {{{"parent", "eth1"}, {"com.docker.network.advertise_addr_ms", "1s"}}, "from 100 to 2000"},
  };
  for (const Case& c : cases) {
    Result<NetworkOptions> r = ParseNetworkOptions(c.opts);
    ASSERT_FALSE(r.ok()) << c.text;
    EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
    EXPECT_NE(r.status().message().find(c.text), std::string::npos) << r.status().message();
  }
}

// Docker 28's option names for announcements after Join; defaults 3 x 1 s, 0 turns them off.
TEST(NetworkOptionsTest, AnnouncementsDefaultToThreeASecondApartAndCanBeTunedOrTurnedOff) {
  Result<NetworkOptions> plain = ParseNetworkOptions({{"parent", "eth1"}});
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ(plain->announce_count, 3u);
  EXPECT_EQ(plain->announce_interval_ms, 1000u);
  Result<NetworkOptions> tuned = ParseNetworkOptions({{"parent", "eth1"},
                                                      {"com.docker.network.advertise_addr_nmsgs", "10"},
                                                      {"com.docker.network.advertise_addr_ms", "100"}});
  ASSERT_TRUE(tuned.ok()) << tuned.status().message();
  EXPECT_EQ(tuned->announce_count, 10u);
  EXPECT_EQ(tuned->announce_interval_ms, 100u);
  Result<NetworkOptions> off =
      ParseNetworkOptions({{"parent", "eth1"}, {"com.docker.network.advertise_addr_nmsgs", "0"}});
  ASSERT_TRUE(off.ok());
  EXPECT_EQ(off->announce_count, 0u);
}

}  // namespace
}  // namespace smv::driver
