// Announcements after Join: the frames byte by byte, the schedule (how many, how far apart,
// cancelled by Leave/DeleteEndpoint), and what DriverService::Join schedules for which link.

#include <gtest/gtest.h>

#include <chrono>
#include <mutex>
#include <thread>

#include "driver/announce/announce_schedule.h"
#include "driver/announce/engine_announces.h"
#include "driver/driver_service.h"
#include "driver/packet/announce_frames.h"
#include "tests/support/fake_link_ops.h"
#include "tests/support/memory_network_store.h"

namespace smv::driver {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

const MacAddress kMac = *MacAddress::Parse("02:42:c0:00:02:aa");

// Records what it was asked to send, and when.
class RecordingAnnouncer : public Announcer {
 public:
  Status Send(const Announcement& a) override {
    std::scoped_lock lock(mu_);
    sent_.push_back({Clock::now(), a});
    return OkStatus();
  }
  struct Sent {
    Clock::time_point at;
    Announcement what;
  };
  std::vector<Sent> sent() {
    std::scoped_lock lock(mu_);
    return sent_;
  }

 private:
  std::mutex mu_;
  std::vector<Sent> sent_;
};

TEST(AnnounceFramesTest, AGratuitousArpIsABroadcastRequestFromTheContainersMacForItsOwnAddress) {
  const std::vector<uint8_t> f = GratuitousArpFrame(kMac, *IpAddress::Parse("192.0.2.10"));
  const std::vector<uint8_t> want = {
      0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0x42, 0xc0, 0x00, 0x02, 0xaa, 0x08, 0x06,  // Ethernet, ARP
      0x00, 0x01, 0x08, 0x00, 6,    4,    0x00, 0x01,                                      // Ethernet/IPv4, request
      0x02, 0x42, 0xc0, 0x00, 0x02, 0xaa, 192,  0,    2,    10,                            // sender
      0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 192,  0,    2,    10,                            // target: itself
  };
  EXPECT_EQ(f, want);
}

TEST(AnnounceFramesTest, AnUnsolicitedNaGoesToAllNodesWithOverrideHopLimit255AndAValidChecksum) {
  const IpAddress address = *IpAddress::Parse("2001:db8:228::a");
  const std::vector<uint8_t> f = UnsolicitedNaFrame(kMac, address);
  ASSERT_EQ(f.size(), 14u + 40u + 32u);
  EXPECT_EQ(std::vector<uint8_t>(f.begin(), f.begin() + 14),
            (std::vector<uint8_t>{0x33, 0x33, 0, 0, 0, 1, 0x02, 0x42, 0xc0, 0x00, 0x02, 0xaa, 0x86, 0xdd}));
  const uint8_t* ip6 = f.data() + 14;
  EXPECT_EQ(ip6[0] >> 4, 6);
  EXPECT_EQ(ip6[4] << 8 | ip6[5], 32);  // payload length
  EXPECT_EQ(ip6[6], 58);                // ICMPv6
  EXPECT_EQ(ip6[7], 255);               // receivers drop neighbour discovery with any other
  EXPECT_EQ(std::vector<uint8_t>(ip6 + 8, ip6 + 24), std::vector<uint8_t>(f.begin() + 62, f.begin() + 78))
      << "the source is the announced address, as is the target";
  EXPECT_EQ(std::vector<uint8_t>(ip6 + 24, ip6 + 40),
            (std::vector<uint8_t>{0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}));
  const std::vector<uint8_t> icmp(f.begin() + 54, f.end());
  EXPECT_EQ(icmp[0], 136);   // neighbour advertisement
  EXPECT_EQ(icmp[4], 0x20);  // Override, not Solicited, not Router
  EXPECT_EQ(std::vector<uint8_t>(icmp.begin() + 24, icmp.end()),
            (std::vector<uint8_t>{2, 1, 0x02, 0x42, 0xc0, 0x00, 0x02, 0xaa}));  // target link-layer address
  EXPECT_EQ(Icmpv6Checksum(address, *IpAddress::Parse("ff02::1"), icmp), 0) << "the checksum verifies";
  std::vector<uint8_t> damaged = icmp;
  damaged[30] ^= 1;
  EXPECT_NE(Icmpv6Checksum(address, *IpAddress::Parse("ff02::1"), damaged), 0);
}

// --- Docker >= 28 sends its own unsolicited NAs: the plugin leaves IPv6 to it, keeps IPv4 ------

const MacAddress kParentMac = *MacAddress::Parse("02:00:00:00:00:01");

// GET /version as EngineAnnounces asks it: `version` ("" plays an engine that does not answer).
struct FakeVersion {
  std::string version;
  int calls = 0;
  EngineAnnounces::AskVersion Asker() {
    return [this]() -> Result<std::string> {
      ++calls;
      if (version.empty()) return Unavailable("engine API /version: injected: not answering");
      return version;
    };
  }
};
std::optional<MacAddress> ParentMac(const std::string&) { return kParentMac; }
const Announcement kV4{.link = "eth1", .mac = kMac, .address = *IpAddress::Parse("192.0.2.10")};
const Announcement kV6{.link = "eth1", .mac = kMac, .address = *IpAddress::Parse("2001:db8::a")};

TEST(EngineAnnouncesTest, TheMajorOfAnEngineVersion) {
  EXPECT_EQ(EngineMajorVersion("28.5.2"), 28);
  EXPECT_EQ(EngineMajorVersion("20.10.24+dfsg1"), 20);
  EXPECT_EQ(EngineMajorVersion("29.0.0-rc.1"), 29);
  EXPECT_EQ(EngineMajorVersion(""), std::nullopt);
  EXPECT_EQ(EngineMajorVersion("dev"), std::nullopt);
}

TEST(EngineAnnouncesTest, OnlyIpv6OnDocker28AndLaterWithAMacDockerdKnowsIsTheEngines) {
  EXPECT_TRUE(EngineSendsItself(kV6, "28.5.2", kParentMac));
  EXPECT_TRUE(EngineSendsItself(kV6, "28.0.0", kParentMac));
  EXPECT_TRUE(EngineSendsItself(kV6, "29.1.0", std::nullopt)) << "a parent that cannot be read is not an ipvlan's";
  EXPECT_FALSE(EngineSendsItself(kV4, "28.5.2", kParentMac)) << "Docker 28's own ARPs carry no address";
  EXPECT_FALSE(EngineSendsItself(kV6, "27.5.1", kParentMac));
  EXPECT_FALSE(EngineSendsItself(kV6, "26.1.5+dfsg1", kParentMac));
  EXPECT_FALSE(EngineSendsItself(kV6, "20.10.24+dfsg1", kParentMac));
  EXPECT_FALSE(EngineSendsItself(kV6, "", kParentMac)) << "an engine that cannot be asked: the plugin announces";
  EXPECT_FALSE(EngineSendsItself(kV6, "28.5.2", kMac)) << "an ipvlan's MAC is its parent's; dockerd is not told it";
}

TEST(EngineAnnouncesTest, TheVersionIsAskedOnceAndAnEngineThatDoesNotAnswerIsAskedAgainLater) {
  FakeVersion engine{.version = "28.5.2"};
  EngineAnnounces asked(engine.Asker(), ParentMac);
  EXPECT_FALSE(asked.SendsItself(kV4));
  EXPECT_EQ(engine.calls, 0) << "IPv4 is the plugin's whatever the engine";
  EXPECT_TRUE(asked.SendsItself(kV6));
  EXPECT_TRUE(asked.SendsItself(kV6));
  EXPECT_EQ(engine.calls, 1);

  FakeVersion silent{.version = ""};
  EngineAnnounces retried(silent.Asker(), ParentMac, milliseconds(50));
  EXPECT_FALSE(retried.SendsItself(kV6)) << "not answering: the plugin keeps announcing";
  EXPECT_FALSE(retried.SendsItself(kV6));
  EXPECT_EQ(silent.calls, 1) << "asked again before retry_after";
  silent.version = "28.5.2";
  std::this_thread::sleep_for(milliseconds(60));
  EXPECT_TRUE(retried.SendsItself(kV6));
  EXPECT_EQ(silent.calls, 2);
}

TEST(EngineAnnouncesTest, TheScheduleSendsWhatTheEngineDoesNotAndEverythingBefore28) {
  for (const std::string version : {"28.5.2", "20.10.24+dfsg1", ""}) {
    FakeVersion engine{.version = version};
    EngineAnnounces engine_announces(engine.Asker(), ParentMac);
    RecordingAnnouncer announcer;
    AnnounceSchedule schedule(announcer);
    schedule.LeaveToEngine(&engine_announces);
    schedule.Start("ep1", {kV4, kV6}, 3, milliseconds(10));
    schedule.WaitIdle();
    std::vector<RecordingAnnouncer::Sent> sent = announcer.sent();
    if (version == "28.5.2") {
      ASSERT_EQ(sent.size(), 3u) << "Docker 28 sends the NAs: only the 3 gratuitous ARPs are the plugin's";
      for (const auto& s : sent) EXPECT_EQ(s.what, kV4);
    } else {
      EXPECT_EQ(sent.size(), 6u) << "engine \"" << version << "\": both families are the plugin's";
    }
  }
}

TEST(AnnounceScheduleTest, EachAddressIsSentCountTimesAnIntervalApartAndCancelStopsTheRest) {
  RecordingAnnouncer announcer;
  AnnounceSchedule schedule(announcer);
  const Announcement v4{.link = "eth1", .mac = kMac, .address = *IpAddress::Parse("192.0.2.10")};
  const Announcement v6{.link = "eth1", .mac = kMac, .address = *IpAddress::Parse("2001:db8::a")};
  const Clock::time_point started = Clock::now();
  schedule.Start("ep1", {v4, v6}, 3, milliseconds(100));
  schedule.WaitIdle();
  std::vector<RecordingAnnouncer::Sent> sent = announcer.sent();
  ASSERT_EQ(sent.size(), 6u);
  for (size_t i = 0; i < sent.size(); ++i) EXPECT_EQ(sent[i].what, i % 2 == 0 ? v4 : v6);
  // Round k is due k intervals after the start, and never sent before it is due.
  for (size_t i = 0; i < sent.size(); ++i) EXPECT_GE(sent[i].at - started, milliseconds(100) * (i / 2)) << i;

  schedule.Start("ep2", {v4}, 10, milliseconds(100));
  while (announcer.sent().size() < 8) std::this_thread::sleep_for(milliseconds(5));
  schedule.Cancel("ep2");
  schedule.WaitIdle();
  const size_t after_cancel = announcer.sent().size();
  std::this_thread::sleep_for(milliseconds(350));
  EXPECT_EQ(announcer.sent().size(), after_cancel) << "sent after Cancel";
  EXPECT_LE(after_cancel, 9u);
}

class JoinAnnouncesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    links_.AddExisting({.name = "eth1", .kind = "veth", .mtu = 1500, .up = true});
    auto d = DriverService::Create(links_, store_);
    ASSERT_TRUE(d.ok()) << d.status().message();
    driver_ = std::move(d).value();
    driver_->SetAnnounceSchedule(&schedule_);
  }
  void Join(std::map<std::string, std::string> opts, const std::string& mac) {
    opts["parent"] = "eth1";
    const std::string net(64, '1'), ep(64, 'a');
    ASSERT_TRUE(driver_
                    ->CreateNetwork({net,
                                     opts,
                                     {{*Prefix::Parse("192.0.2.0/24"), std::nullopt}},
                                     {{*Prefix::Parse("2001:db8::/64"), std::nullopt}},
                                     false})
                    .ok());
    ASSERT_TRUE(driver_->CreateEndpoint({net, ep, "192.0.2.10/24", "2001:db8::a/64", mac}).ok());
    ASSERT_TRUE(driver_->Join(net, ep, "/var/run/docker/netns/x").ok());
    schedule_.WaitIdle();
  }

  testing::FakeLinkOps links_;
  testing::MemoryNetworkStore store_;
  RecordingAnnouncer announcer_;
  AnnounceSchedule schedule_{announcer_};
  std::unique_ptr<DriverService> driver_;
};

TEST_F(JoinAnnouncesTest, JoinAnnouncesBothAddressesWithTheEndpointsMacOnItsVlanLink) {
  Join({{"vlan", "228"},
        {"com.docker.network.advertise_addr_nmsgs", "2"},
        {"com.docker.network.advertise_addr_ms", "100"}},
       "02:42:c0:00:02:aa");
  std::vector<RecordingAnnouncer::Sent> sent = announcer_.sent();
  ASSERT_EQ(sent.size(), 4u);
  for (const auto& s : sent) {
    EXPECT_EQ(s.what.link, "eth1.228");
    EXPECT_EQ(s.what.mac, kMac);
  }
  EXPECT_EQ(sent[0].what.address.ToString(), "192.0.2.10");
  EXPECT_EQ(sent[1].what.address.ToString(), "2001:db8::a");
}

TEST_F(JoinAnnouncesTest, OnDocker28AnIpvlanL2KeepsItsNasBecauseDockerdDoesNotKnowItsMac) {
  FakeVersion engine{.version = "28.5.2"};
  EngineAnnounces engine_announces(engine.Asker(), ParentMac);
  schedule_.LeaveToEngine(&engine_announces);
  links_.AddExisting({.name = "eth1", .kind = "veth", .mtu = 1500, .up = true, .mac = kParentMac.ToString()});
  Join({{"ipvlan_mode", "l2"}, {"com.docker.network.advertise_addr_ms", "100"}}, "");
  std::vector<RecordingAnnouncer::Sent> sent = announcer_.sent();
  ASSERT_EQ(sent.size(), 6u) << "3 rounds of both addresses";
  for (const auto& s : sent) EXPECT_EQ(s.what.mac, kParentMac);
  schedule_.LeaveToEngine(nullptr);
}

TEST_F(JoinAnnouncesTest, ZeroAnnouncementsSendNothing) {
  Join({{"com.docker.network.advertise_addr_nmsgs", "0"}}, "");
  EXPECT_TRUE(announcer_.sent().empty());
}

}  // namespace
}  // namespace smv::driver
