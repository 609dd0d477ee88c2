// Real libnl against a real kernel, inside a private network namespace.

#include <gtest/gtest.h>

#include <linux/capability.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fcntl.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "driver/driver_service.h"
#include "tests/support/memory_network_store.h"
#include "tests/support/netns_test.h"

namespace smv::nl {
namespace {

using smv::testing::NetnsTest;

// A container's network namespace: a child that unshared one and waits, killed at the end.
class ContainerNetns {
 public:
  ContainerNetns() {
    int ready[2];
    if (pipe(ready) != 0) return;
    pid_ = fork();
    if (pid_ == 0) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (unshare(CLONE_NEWNET) != 0) _exit(1);
      (void)!write(ready[1], "x", 1);
      for (;;) pause();
    }
    close(ready[1]);
    char byte = 0;
    if (pid_ <= 0 || read(ready[0], &byte, 1) != 1) pid_ = -1;
    close(ready[0]);
  }
  ContainerNetns(const ContainerNetns&) = delete;
  ContainerNetns& operator=(const ContainerNetns&) = delete;
  ~ContainerNetns() { End(); }
  void End() {
    if (pid_ <= 0) return;
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }
  bool ok() const { return pid_ > 0; }
  std::string path() const { return "/proc/" + std::to_string(pid_) + "/ns/net"; }
  std::string pid() const { return std::to_string(pid_); }
  // `command` run inside: its exit code, and its output appended to `output` when given.
  int Run(const std::string& command, std::string* output = nullptr) const {
    FILE* pipe = popen(("nsenter --net=" + path() + " " + command + " 2>&1").c_str(), "r");
    if (pipe == nullptr) return -1;
    char buf[512];
    std::string out;
    while (fgets(buf, sizeof buf, pipe) != nullptr) out += buf;
    if (output != nullptr) *output = out;
    return pclose(pipe);
  }
  // True when the link is administratively up (UP among its flags, as `ip link` shows them).
  bool Up(const std::string& link) const {
    std::string out;
    if (Run("ip -o link show dev " + link, &out) != 0) ADD_FAILURE() << out;
    const size_t open = out.find('<');
    const std::string flags = "," + out.substr(open + 1, out.find('>') - open - 1) + ",";
    return flags.find(",UP,") != std::string::npos;
  }

 private:
  pid_t pid_ = -1;
};

TEST_F(NetnsTest, FindReportsKindMtuAndParent) {
  Result<std::optional<LinkInfo>> eth1 = links_->Find("eth1");
  ASSERT_TRUE(eth1.ok());
  ASSERT_TRUE(eth1->has_value());
  EXPECT_EQ((*eth1)->kind, "veth");
  EXPECT_EQ((*eth1)->mtu, 1500u);
  EXPECT_FALSE((*eth1)->up);
  EXPECT_FALSE(links_->Find("nope0")->has_value());
}

TEST_F(NetnsTest, MacvlanInEveryModeWithMacAndMtu) {
  ASSERT_TRUE(links_->SetUp("eth1").ok());
  for (const char* mode : {"bridge", "private", "vepa", "passthru"}) {
    const std::string name = std::string("mv-") + mode;
    Status s = links_->CreateMacvlan({name, "eth1", mode, 1400, "02:42:c0:00:02:0a"});
    ASSERT_TRUE(s.ok()) << mode << ": " << s.message();
    Result<std::optional<LinkInfo>> link = links_->Find(name);
    ASSERT_TRUE(link.ok() && link->has_value());
    EXPECT_EQ((*link)->kind, "macvlan");
    EXPECT_EQ((*link)->macvlan_mode, mode);
    EXPECT_EQ((*link)->mtu, 1400u);
    // passthru hands the parent's own MAC to its one macvlan; other modes take ours.
    const std::string want_mac = std::string(mode) == "passthru" ? (*links_->Find("eth1"))->mac : "02:42:c0:00:02:0a";
    EXPECT_EQ((*link)->mac, want_mac) << mode;
    EXPECT_EQ((*link)->parent_name, "eth1");
    ASSERT_TRUE(links_->Delete(name).ok());  // passthru allows one per parent: delete each
  }
}

TEST_F(NetnsTest, CreateIsExclusiveAndDeleteOfAbsentIsNotFound) {
  ASSERT_TRUE(links_->CreateMacvlan({"mv0", "eth1", "bridge", 0, ""}).ok());
  EXPECT_EQ(links_->CreateMacvlan({"mv0", "eth1", "bridge", 0, ""}).code(), Code::kAlreadyExists);
  ASSERT_TRUE(links_->Delete("mv0").ok());
  EXPECT_EQ(links_->Delete("mv0").code(), Code::kNotFound);
  EXPECT_EQ(links_->CreateMacvlan({"mv1", "nope0", "bridge", 0, ""}).code(), Code::kNotFound);
}

TEST_F(NetnsTest, MtuAboveParentIsRefusedByTheKernel) {
  EXPECT_FALSE(links_->CreateMacvlan({"mv0", "eth1", "bridge", 9000, ""}).ok());
  EXPECT_FALSE(links_->Find("mv0")->has_value());
}

TEST_F(NetnsTest, PromiscOnAndOff) {
  ASSERT_TRUE(links_->SetPromisc("eth1", true).ok());
  EXPECT_TRUE((*links_->Find("eth1"))->promisc);
  ASSERT_TRUE(links_->SetPromisc("eth1", false).ok());
  EXPECT_FALSE((*links_->Find("eth1"))->promisc);
}

TEST_F(NetnsTest, ListSeesEverythingWithParents) {
  ASSERT_TRUE(links_->CreateMacvlan({"mv0", "eth1", "bridge", 0, ""}).ok());
  Result<std::vector<LinkInfo>> all = links_->List();
  ASSERT_TRUE(all.ok());
  bool found = false;
  for (const LinkInfo& l : *all) found = found || (l.name == "mv0" && l.parent_name == "eth1");
  EXPECT_TRUE(found);
}

TEST_F(NetnsTest, VlanIsCreatedWithReorderHdrOrRefusedInWords) {
  ASSERT_TRUE(links_->SetUp("eth1").ok());
  Status s = links_->CreateVlan("eth1", 228, "eth1.228");
  if (!KernelHasVlan()) {
    ASSERT_FALSE(s.ok());
    EXPECT_EQ(s.code(), Code::kFailedPrecondition);
    EXPECT_NE(s.message().find("this kernel has no 802.1Q VLAN support: load the 8021q module"), std::string::npos)
        << s.message();
    EXPECT_FALSE(links_->Find("eth1.228")->has_value());
    return;
  }
  ASSERT_TRUE(s.ok()) << s.message();
  Result<std::optional<LinkInfo>> vlan = links_->Find("eth1.228");
  ASSERT_TRUE(vlan.ok() && vlan->has_value());
  EXPECT_EQ((*vlan)->kind, "vlan");
  EXPECT_EQ((*vlan)->vlan_id, 228);
  EXPECT_TRUE((*vlan)->reorder_hdr);
  EXPECT_TRUE((*vlan)->up);
  EXPECT_EQ((*vlan)->parent_name, "eth1");
  EXPECT_EQ(links_->CreateVlan("eth1", 228, "eth1.228").code(), Code::kAlreadyExists);
}

TEST_F(NetnsTest, VlanOnADownParentIsRefusedAndLeavesNoLink) {
  if (!KernelHasVlan()) GTEST_SKIP() << "needs an 802.1Q kernel (runs in the VM tier)";
  Status s = links_->CreateVlan("eth1", 7, "eth1.7");  // eth1 is down
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("is the parent interface \"eth1\" up?"), std::string::npos) << s.message();
  EXPECT_FALSE(links_->Find("eth1.7")->has_value());
}

// The driver service on real links: what a docker network create / run / rm does to the host.
class DriverNetnsTest : public NetnsTest {
 protected:
  void SetUp() override {
    NetnsTest::SetUp();
    if (IsSkipped()) return;
    Restart();
  }
  void Restart() {
    driver_.reset();
    auto d = driver::DriverService::Create(*links_, store_);
    ASSERT_TRUE(d.ok());
    driver_ = std::move(d).value();
  }
  Status CreateNetwork(const std::string& id, std::map<std::string, std::string> opts) {
    return driver_->CreateNetwork(
        {id, std::move(opts), {{*Prefix::Parse("192.0.2.0/24"), IpAddress::Parse("192.0.2.1")}}, {}, false});
  }
  smv::testing::MemoryNetworkStore store_;
  std::unique_ptr<driver::DriverService> driver_;
};

const std::string kNet = "3f2a9c1b2d4e3f2a9c1b2d4e3f2a9c1b2d4e3f2a9c1b2d4e3f2a9c1b2d4e1234";
const std::string kEp = "da420489ddbddae14d48d4cba1867e1cc9d7455677bd158c81a0e02f92c0237f";

TEST_F(DriverNetnsTest, NetworkOnParentBringsItUpSetsPromiscAndRestoresIt) {
  ASSERT_TRUE(CreateNetwork(kNet, {{"parent", "eth1"}}).ok());
  Result<std::optional<LinkInfo>> eth1 = links_->Find("eth1");
  EXPECT_TRUE((*eth1)->up);
  EXPECT_TRUE((*eth1)->promisc);
  ASSERT_TRUE(driver_->DeleteNetwork(kNet).ok());
  EXPECT_FALSE((*links_->Find("eth1"))->promisc);
}

TEST_F(DriverNetnsTest, EndpointLinkIsCreatedOnTheParentAndDeletedTwiceSafely) {
  ASSERT_TRUE(CreateNetwork(kNet, {{"parent", "eth1"}, {"mtu", "1400"}}).ok());
  ASSERT_TRUE(driver_->CreateEndpoint({kNet, kEp, "192.0.2.10/24", "", "02:00:00:00:02:28"}).ok());
  Result<std::optional<LinkInfo>> link = links_->Find("smvda420489ddb");
  ASSERT_TRUE(link.ok() && link->has_value());
  EXPECT_EQ((*link)->mac, "02:00:00:00:02:28");
  EXPECT_EQ((*link)->mtu, 1400u);
  ASSERT_TRUE(driver_->Join(kNet, kEp, "/var/run/docker/netns/x").ok());
  ASSERT_TRUE(driver_->DeleteEndpoint(kNet, kEp).ok());
  EXPECT_FALSE(links_->Find("smvda420489ddb")->has_value());
  EXPECT_TRUE(driver_->DeleteEndpoint(kNet, kEp).ok());
}

TEST_F(NetnsTest, ReaperDeletesWhatIsQueuedAndDrainWaitsForIt) {
  for (const char* name : {"smv00000000001", "smv00000000002", "smv00000000003"}) {
    ASSERT_TRUE(links_->CreateMacvlan({name, "eth1", "bridge", 0, ""}).ok());
  }
  auto own = nl::LinkManager::Open();
  ASSERT_TRUE(own.ok());
  driver::LinkReaper reaper(std::move(own).value());
  reaper.Delete("smv00000000001");
  reaper.Delete("no-such-link");  // not an error, and does not stop the queue
  reaper.Delete("smv00000000002");
  reaper.Drain();
  EXPECT_FALSE(links_->Find("smv00000000001")->has_value());
  EXPECT_FALSE(links_->Find("smv00000000002")->has_value());
  EXPECT_TRUE(links_->Find("smv00000000003")->has_value());
}

TEST_F(NetnsTest, ReaperFinishesItsQueueWhenItStops) {
  ASSERT_TRUE(links_->CreateMacvlan({"smv00000000001", "eth1", "bridge", 0, ""}).ok());
  {
    driver::LinkReaper reaper(std::move(nl::LinkManager::Open()).value());
    reaper.Delete("smv00000000001");
  }
  EXPECT_FALSE(links_->Find("smv00000000001")->has_value());
}

// With a reaper, DeleteEndpoint answers before the link is gone; network removal waits for it.
TEST_F(DriverNetnsTest, EndpointLinksDeletedInTheBackgroundAreGoneWhenTheNetworkIs) {
  driver::LinkReaper reaper(std::move(nl::LinkManager::Open()).value());
  driver_->SetLinkReaper(&reaper);
  ASSERT_TRUE(CreateNetwork(kNet, {{"parent", "eth1"}}).ok());
  ASSERT_TRUE(driver_->CreateEndpoint({kNet, kEp, "192.0.2.10/24", "", ""}).ok());
  ASSERT_TRUE(driver_->Join(kNet, kEp, "/var/run/docker/netns/x").ok());
  ASSERT_TRUE(driver_->DeleteEndpoint(kNet, kEp).ok());
  EXPECT_FALSE(driver_->FindEndpoint(kEp).has_value());  // the record goes at once
  EXPECT_TRUE(store_.endpoint_count() == 0);
  ASSERT_TRUE(driver_->DeleteNetwork(kNet).ok());
  EXPECT_FALSE(links_->Find("smvda420489ddb")->has_value());
  Result<std::vector<LinkInfo>> all = links_->List();
  ASSERT_TRUE(all.ok());
  std::vector<std::string> macvlans;
  for (const LinkInfo& l : *all) {
    if (l.kind == "macvlan") macvlans.push_back(l.name);
  }
  EXPECT_TRUE(macvlans.empty());
}

TEST_F(DriverNetnsTest, ReconcileRemovesOrphanedEndpointLinks) {
  ASSERT_TRUE(CreateNetwork(kNet, {{"parent", "eth1"}}).ok());
  // What a crash between creating the link and storing the endpoint leaves behind.
  ASSERT_TRUE(links_->CreateMacvlan({"smv0123456789a", "eth1", "bridge", 0, ""}).ok());
  Restart();
  driver::ReconcileReport report = driver_->Reconcile();
  EXPECT_EQ(report.orphan_links_deleted, 1);
  EXPECT_FALSE(links_->Find("smv0123456789a")->has_value());
}

TEST_F(DriverNetnsTest, VlanNetworkOwnsItsLinkOrFailsCleanly) {
  const size_t before = links_->List()->size();
  Status s = CreateNetwork(kNet, {{"parent", "eth1"}, {"vlan", "228"}});
  if (!KernelHasVlan()) {
    ASSERT_FALSE(s.ok());
    EXPECT_NE(s.message().find("this kernel has no 802.1Q VLAN support: load the 8021q module"), std::string::npos);
    EXPECT_EQ(links_->List()->size(), before);  // nothing left behind
    EXPECT_FALSE((*links_->Find("eth1"))->promisc);
    EXPECT_EQ(store_.network_count(), 0u);
    return;
  }
  ASSERT_TRUE(s.ok()) << s.message();
  ASSERT_TRUE(links_->Find("eth1.228")->has_value());
  ASSERT_TRUE(driver_->CreateEndpoint({kNet, kEp, "192.0.2.10/24", "", ""}).ok());
  EXPECT_EQ((*links_->Find("smvda420489ddb"))->parent_name, "eth1.228");
  // A reboot: the VLAN link is gone; reconcile brings it back before dockerd calls.
  ASSERT_TRUE(driver_->DeleteEndpoint(kNet, kEp).ok());
  ASSERT_TRUE(links_->Delete("eth1.228").ok());
  Restart();
  EXPECT_EQ(driver_->Reconcile().vlan_links_recreated, 1);
  ASSERT_TRUE(links_->Find("eth1.228")->has_value());
  ASSERT_TRUE(driver_->DeleteNetwork(kNet).ok());
  EXPECT_FALSE(links_->Find("eth1.228")->has_value());
}

TEST_F(DriverNetnsTest, AdoptedVlanLinkIsKeptAndClashIsRefused) {
  if (!KernelHasVlan()) GTEST_SKIP() << "needs an 802.1Q kernel (runs in the VM tier)";
  ASSERT_TRUE(links_->SetUp("eth1").ok());  // a VLAN link cannot be up on a down parent
  Status s10 = links_->CreateVlan("eth1", 10, "eth1.10");
  ASSERT_TRUE(s10.ok()) << s10.message();
  ASSERT_TRUE(links_->CreateVlan("eth1", 11, "eth1.12").ok());
  ASSERT_TRUE(CreateNetwork(kNet, {{"parent", "eth1"}, {"vlan", "10"}}).ok());
  ASSERT_TRUE(driver_->DeleteNetwork(kNet).ok());
  EXPECT_TRUE(links_->Find("eth1.10")->has_value());
  EXPECT_TRUE((*links_->Find("eth1.10"))->up);
  Status s = CreateNetwork(kNet, {{"parent", "eth1"}, {"vlan", "12"}});
  EXPECT_NE(s.message().find("exists but is not VLAN 12"), std::string::npos) << s.message();
}

// Owner tags (link_ops.h): what a tagged manager creates carries its tag as the kernel link alias,
// read back by Find and List.
TEST_F(NetnsTest, OwnerTagIsSetOnCreatedLinksAndReadBack) {
  const std::string tag = "static-macvlan:00000000000000a1";
  links_->SetOwnerTag(tag);
  ASSERT_TRUE(links_->SetUp("eth1").ok());
  ASSERT_TRUE(links_->CreateMacvlan({"smv0000000000a", "eth1", "bridge", 0, ""}).ok());
  EXPECT_EQ((*links_->Find("smv0000000000a"))->alias, tag);
  // A parent with macvlan children takes no ipvlan child (EBUSY): the macvlan goes first.
  ASSERT_TRUE(links_->Delete("smv0000000000a").ok());
  std::vector<std::string> tagged;
  if (Status ipvlan = links_->CreateIpvlan("smv0000000000b", "eth1", "l2", 0); ipvlan.ok()) {
    EXPECT_EQ((*links_->Find("smv0000000000b"))->alias, tag);
    tagged.push_back("smv0000000000b");
  } else {
    EXPECT_EQ(ipvlan.code(), Code::kFailedPrecondition) << ipvlan.message();  // a kernel without ipvlan
  }
  if (KernelHasVlan()) {
    ASSERT_TRUE(links_->CreateVlan("eth1", 228, "eth1.228").ok());
    EXPECT_EQ((*links_->Find("eth1.228"))->alias, tag);
    EXPECT_TRUE((*links_->Find("eth1.228"))->up);
    tagged.push_back("eth1.228");
  }
  Result<std::vector<LinkInfo>> all = links_->List();
  ASSERT_TRUE(all.ok());
  for (const LinkInfo& l : *all) {
    const bool ours = std::find(tagged.begin(), tagged.end(), l.name) != tagged.end();
    EXPECT_EQ(l.alias, ours ? tag : "") << l.name;  // eth1, sw0 and lo were not made tagged
  }
}

// Two instances in one network namespace: neither deletes the other's links, directly or through
// its reaper; an untagged link (an older version's) is still deleted, so upgrades sweep orphans.
TEST_F(NetnsTest, ALinkTaggedByAnotherInstanceIsNeverDeleted) {
  auto mine = nl::LinkManager::Open();
  auto theirs = nl::LinkManager::Open();
  ASSERT_TRUE(mine.ok() && theirs.ok());
  (*mine)->SetOwnerTag("static-macvlan:00000000000000a1");
  (*theirs)->SetOwnerTag("static-macvlan:00000000000000b2");
  ASSERT_TRUE((*theirs)->CreateMacvlan({"smv0000000000b", "eth1", "bridge", 0, ""}).ok());
  Status refused = (*mine)->Delete("smv0000000000b");
  EXPECT_EQ(refused.code(), Code::kFailedPrecondition) << refused.message();
  EXPECT_NE(refused.message().find("belongs to another static-macvlan instance"), std::string::npos);
  EXPECT_TRUE(links_->Find("smv0000000000b")->has_value());

  ASSERT_TRUE(links_->CreateMacvlan({"smv0000000000c", "eth1", "bridge", 0, ""}).ok());  // untagged
  {
    driver::LinkReaper reaper(std::move(mine).value());
    reaper.Delete("smv0000000000b");
    reaper.Delete("smv0000000000c");
  }
  EXPECT_TRUE(links_->Find("smv0000000000b")->has_value());
  EXPECT_FALSE(links_->Find("smv0000000000c")->has_value());
  EXPECT_TRUE((*theirs)->Delete("smv0000000000b").ok());
  EXPECT_EQ((*theirs)->Delete("smv0000000000b").code(), Code::kNotFound);
}

// The driver finds a joined endpoint's link where dockerd moved it by the MAC it recorded (here
// the one it derived from the address), and deletes it there for a given-away address only.
TEST_F(DriverNetnsTest, AGivenAwayAddressDeletesTheEndpointsLinkInItsContainer) {
  ContainerNetns container;
  ASSERT_TRUE(container.ok());
  ASSERT_TRUE(CreateNetwork(kNet, {{"parent", "eth1"}}).ok());
  ASSERT_TRUE(driver_->CreateEndpoint({kNet, kEp, "192.0.2.10/24", "", ""}).ok());
  ASSERT_TRUE(driver_->Join(kNet, kEp, "/var/run/docker/netns/x").ok());
  // What dockerd does after Join: moves the link into the container, names it, gives it the address.
  ASSERT_EQ(std::system(("ip link set dev smvda420489ddb netns " + container.pid()).c_str()), 0);
  ASSERT_EQ(container.Run("ip link set dev smvda420489ddb name eth0"), 0);
  ASSERT_EQ(container.Run("ip addr add 192.0.2.10/24 dev eth0"), 0);
  ASSERT_EQ(container.Run("ip link set dev eth0 up"), 0);
  EXPECT_EQ(driver_->DeleteContainerLinkCarrying(kEp, *IpAddress::Parse("192.0.2.11")).status().code(),
            Code::kInvalidArgument)
      << "not the endpoint's address";
  Result<ContainerLinkDeletion> deleted = driver_->DeleteContainerLinkCarrying(kEp, *IpAddress::Parse("192.0.2.10"));
  ASSERT_TRUE(deleted.ok()) << deleted.status().message();
  EXPECT_EQ(*deleted, ContainerLinkDeletion::kDeleted);
  EXPECT_NE(container.Run("ip link show dev eth0"), 0);
}

// Start-up reconcile of one instance leaves another instance's endpoint and host links alone.
TEST_F(DriverNetnsTest, ReconcileLeavesAnotherInstancesLinks) {
  links_->SetOwnerTag("static-macvlan:00000000000000a1");
  auto theirs = nl::LinkManager::Open();
  ASSERT_TRUE(theirs.ok());
  (*theirs)->SetOwnerTag("static-macvlan:00000000000000b2");
  ASSERT_TRUE((*theirs)->CreateMacvlan({"smv0123456789b", "eth1", "bridge", 0, ""}).ok());
  ASSERT_TRUE((*theirs)->CreateMacvlan({"smvh0123456789", "eth1", "bridge", 0, ""}).ok());
  ASSERT_TRUE(CreateNetwork(kNet, {{"parent", "eth1"}}).ok());
  Restart();
  EXPECT_EQ(driver_->Reconcile().orphan_links_deleted, 0);
  EXPECT_TRUE(links_->Find("smv0123456789b")->has_value());
  EXPECT_TRUE(links_->Find("smvh0123456789")->has_value());
}

// A container's address given away: exactly the link with the endpoint's MAC that carries it is
// deleted in the container's namespace (IPv4 and IPv6); a link with that MAC carrying other
// addresses is "no such link", a link tagged by another instance is none of ours.
TEST_F(NetnsTest, DeleteContainerLinkDeletesOnlyTheLinkWithTheMacCarryingTheAddress) {
  ContainerNetns container;
  ASSERT_TRUE(container.ok());
  links_->SetOwnerTag("static-macvlan:00000000000000a1");
  ASSERT_TRUE(links_->SetUp("eth1").ok());
  ASSERT_TRUE(links_->CreateMacvlan({"mvc", "eth1", "bridge", 0, "02:42:c0:00:02:0a"}).ok());
  ASSERT_TRUE(links_->CreateMacvlan({"mvd", "eth1", "bridge", 0, "02:42:c0:00:02:0b"}).ok());
  auto theirs = nl::LinkManager::Open();
  ASSERT_TRUE(theirs.ok());
  (*theirs)->SetOwnerTag("static-macvlan:00000000000000b2");
  ASSERT_TRUE((*theirs)->CreateMacvlan({"mvt", "eth1", "bridge", 0, "02:42:c0:00:02:0c"}).ok());
  for (const char* link : {"mvc", "mvd", "mvt"}) {
    ASSERT_EQ(std::system(("ip link set dev " + std::string(link) + " netns " + container.pid()).c_str()), 0);
    ASSERT_EQ(container.Run(std::string("ip link set dev ") + link + " up"), 0);
  }
  ASSERT_EQ(container.Run("ip addr add 192.0.2.10/24 dev mvc"), 0);
  ASSERT_EQ(container.Run("ip addr add 2001:db8::10/64 dev mvd nodad"), 0);
  ASSERT_EQ(container.Run("ip addr add 192.0.2.12/24 dev mvt"), 0);
  // In the caller's own namespace, with the same MAC and address: never a container's. (After the
  // first peer link dump, the kernel has given the caller's namespace an id in itself too.)
  ASSERT_TRUE(links_->CreateVethPair("hx", "hy").ok());
  ASSERT_EQ(std::system("ip link set dev hx address 02:42:c0:00:02:0a"), 0);
  ASSERT_TRUE(links_->AddHostAddress("hx", *IpAddress::Parse("192.0.2.10")).ok());
  ASSERT_TRUE(links_->SetUp("hx").ok());
  auto delete_link = [&](const char* mac, const char* address) {
    Result<ContainerLinkDeletion> deleted = links_->DeleteContainerLink(mac, *IpAddress::Parse(address), "eth1");
    EXPECT_TRUE(deleted.ok()) << deleted.status().message();
    return deleted.ok() ? *deleted : ContainerLinkDeletion::kNoNamespace;
  };
  auto present = [&](const std::string& link) { return container.Run("ip link show dev " + link) == 0; };

  EXPECT_EQ(delete_link("02:42:c0:00:02:0b", "192.0.2.10"), ContainerLinkDeletion::kNoSuchLink);
  EXPECT_EQ(delete_link("02:42:c0:00:02:0a", "2001:db8::10"), ContainerLinkDeletion::kNoSuchLink);
  EXPECT_EQ(delete_link("02:42:c0:00:02:0c", "192.0.2.12"), ContainerLinkDeletion::kNoNamespace)
      << "another instance's link";
  EXPECT_TRUE(present("mvc") && present("mvd") && present("mvt"));
  EXPECT_EQ(delete_link("02:42:C0:00:02:0B", "2001:db8::10"), ContainerLinkDeletion::kDeleted);
  EXPECT_FALSE(present("mvd"));
  EXPECT_TRUE(container.Up("mvc"));
  EXPECT_EQ(delete_link("02:42:c0:00:02:0a", "192.0.2.10"), ContainerLinkDeletion::kDeleted);
  EXPECT_FALSE(present("mvc"));
  EXPECT_TRUE(container.Up("mvt"));
  EXPECT_EQ(delete_link("02:42:c0:00:02:0a", "192.0.2.10"), ContainerLinkDeletion::kNoNamespace) << "gone already";
  ASSERT_TRUE(links_->Find("hx")->has_value()) << "a link of the caller's own namespace was deleted";
  EXPECT_TRUE((*links_->Find("hx"))->up);
  EXPECT_EQ(links_->DeleteContainerLink("02:42", *IpAddress::Parse("192.0.2.10"), "eth1").status().code(),
            Code::kInvalidArgument);
}

// Docker derives MACs from addresses as this driver does, and subnets may overlap on other
// parents: the same MAC and address can be on many links. Only the link this instance made on the
// endpoint's parent goes; Docker's own macvlan, a veth and our endpoint on another parent stay.
TEST_F(NetnsTest, DeleteContainerLinkLeavesOtherLinksWithTheSameMacAndAddress) {
  ContainerNetns target, docker_macvlan, other_network, veth_owner;
  ASSERT_TRUE(target.ok() && docker_macvlan.ok() && other_network.ok() && veth_owner.ok());
  links_->SetOwnerTag("static-macvlan:00000000000000a1");
  ASSERT_TRUE(links_->CreateVethPair("eth2", "eth2p").ok());
  ASSERT_TRUE(links_->SetUp("eth1").ok() && links_->SetUp("eth2").ok());
  auto untagged = nl::LinkManager::Open();
  ASSERT_TRUE(untagged.ok());
  const std::string mac = "02:42:c0:00:02:0a";
  ASSERT_TRUE(links_->CreateMacvlan({"mva", "eth1", "bridge", 0, mac}).ok());
  ASSERT_TRUE((*untagged)->CreateMacvlan({"mvx", "eth2", "bridge", 0, mac}).ok());  // Docker's macvlan driver
  ASSERT_TRUE(links_->CreateMacvlan({"mvn", "eth2", "bridge", 0, mac}).ok());       // our other network
  ASSERT_TRUE(smv::testing::CreateVethPair("vx", "vy").ok());
  ASSERT_EQ(std::system(("ip link set dev vx address " + mac).c_str()), 0);
  const std::vector<std::pair<ContainerNetns*, std::string>> placed = {
      {&target, "mva"}, {&docker_macvlan, "mvx"}, {&other_network, "mvn"}, {&veth_owner, "vx"}};
  for (const auto& [ns, link] : placed) {
    ASSERT_EQ(std::system(("ip link set dev " + link + " netns " + ns->pid()).c_str()), 0);
    ASSERT_EQ(ns->Run("ip addr add 192.0.2.10/24 dev " + link), 0) << link;
  }
  ASSERT_EQ(target.Run("ip link set dev mva up"), 0);
  Result<ContainerLinkDeletion> deleted = links_->DeleteContainerLink(mac, *IpAddress::Parse("192.0.2.10"), "eth1");
  ASSERT_TRUE(deleted.ok()) << deleted.status().message();
  EXPECT_EQ(*deleted, ContainerLinkDeletion::kDeleted);
  EXPECT_NE(target.Run("ip link show dev mva"), 0) << "the endpoint's link is still there";
  EXPECT_EQ(docker_macvlan.Run("ip link show dev mvx"), 0) << "Docker's own macvlan (untagged) was deleted";
  EXPECT_EQ(other_network.Run("ip link show dev mvn"), 0) << "our endpoint on another parent was deleted";
  EXPECT_EQ(veth_owner.Run("ip link show dev vx"), 0) << "a veth with that MAC and address was deleted";
  Result<ContainerLinkDeletion> again = links_->DeleteContainerLink(mac, *IpAddress::Parse("192.0.2.10"), "eth1");
  ASSERT_TRUE(again.ok()) << again.status().message();
  EXPECT_EQ(*again, ContainerLinkDeletion::kNoNamespace) << "none of ours is left on eth1";
}

// The managed plugin's capabilities, as plugin-config/config.json grants them (linux.capabilities),
// next to the service unit. An unknown name fails the test rather than being left out.
std::vector<int> PluginCapabilities() {
  const std::filesystem::path config = std::filesystem::path(SMV_SERVICE_UNIT).parent_path() / "config.json";
  std::ifstream in(config);
  const nlohmann::json json = nlohmann::json::parse(in, nullptr, false);
  std::vector<int> caps;
  if (json.is_discarded()) {
    ADD_FAILURE() << "cannot read " << config;
    return caps;
  }
  const std::map<std::string, int> known = {{"CAP_NET_ADMIN", CAP_NET_ADMIN},
                                            {"CAP_NET_RAW", CAP_NET_RAW},
                                            {"CAP_SYS_ADMIN", CAP_SYS_ADMIN},
                                            {"CAP_SYS_PTRACE", CAP_SYS_PTRACE},
                                            {"CAP_DAC_OVERRIDE", CAP_DAC_OVERRIDE}};
  for (const nlohmann::json& name : json["linux"]["capabilities"]) {
    auto cap = known.find(name.get<std::string>());
    if (cap == known.end()) {
      ADD_FAILURE() << config << ": capability " << name << " unknown to this test";
      continue;
    }
    caps.push_back(cap->second);
  }
  return caps;
}

// Exit codes of AsManagedPlugin's child.
constexpr int kTookItOff = 0, kCallFailed = 1, kNoCapset = 2, kOtherOutcome = 3, kSawAPath = 4;

// Runs `act` in a child that is placed as the managed plugin is: in the caller's (host's) network
// namespace, its own mount namespace with no view of any namespace file (a fresh tmpfs over /proc,
// /run and /tmp), and only `keep` of the capabilities. `netns_path` must not open there.
int AsManagedPlugin(const std::vector<int>& keep, const std::string& netns_path, const std::function<int()>& act) {
  const pid_t child = fork();
  if (child == 0) {
    if (unshare(CLONE_NEWNS) != 0 || mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) _exit(kNoCapset);
    for (const char* dir : {"/proc", "/run", "/tmp"}) {
      if (mount("none", dir, "tmpfs", 0, nullptr) != 0) _exit(kNoCapset);
    }
    for (int cap = 0; cap <= CAP_LAST_CAP; ++cap) {
      if (std::find(keep.begin(), keep.end(), cap) == keep.end()) prctl(PR_CAPBSET_DROP, cap, 0, 0, 0);
    }
    __user_cap_header_struct header{.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
    __user_cap_data_struct data[2] = {};
    for (int cap : keep) {
      data[cap / 32].effective |= 1u << (cap % 32);
      data[cap / 32].permitted |= 1u << (cap % 32);
    }
    if (syscall(SYS_capset, &header, data) != 0) _exit(kNoCapset);
    if (const int fd = open(netns_path.c_str(), O_RDONLY | O_CLOEXEC); fd >= 0) _exit(kSawAPath);
    _exit(act());
  }
  int status = 0;
  waitpid(child, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 100;
}

// The fleet case of issue 27 on the managed plugin: a container's address was given away, and the
// plugin (host network, CAP_NET_ADMIN + CAP_NET_RAW, no path to dockerd's namespaces) takes it off
// the wire: exactly the container's link with the endpoint's MAC that carries it, not another
// namespace's link with the same address and another MAC, not a link of its own namespace.
TEST_F(NetnsTest, TheManagedPluginTakesTheGivenAwayAddressOffTheWireInTheContainer) {
  const std::vector<int> plugin = PluginCapabilities();
  ASSERT_FALSE(plugin.empty());
  ContainerNetns container, elsewhere;
  ASSERT_TRUE(container.ok() && elsewhere.ok());
  links_->SetOwnerTag("static-macvlan:00000000000000a1");
  ASSERT_TRUE(links_->SetUp("eth1").ok());
  ASSERT_TRUE(links_->CreateMacvlan({"mvc", "eth1", "bridge", 0, "02:42:c0:00:02:0a"}).ok());
  ASSERT_TRUE(links_->CreateMacvlan({"mvd", "eth1", "bridge", 0, "02:42:c0:00:02:0b"}).ok());
  ASSERT_TRUE(links_->CreateMacvlan({"mvo", "eth1", "bridge", 0, "02:42:c0:00:02:99"}).ok());
  ASSERT_EQ(std::system(("ip link set dev mvc netns " + container.pid()).c_str()), 0);
  ASSERT_EQ(std::system(("ip link set dev mvd netns " + container.pid()).c_str()), 0);
  ASSERT_EQ(std::system(("ip link set dev mvo netns " + elsewhere.pid()).c_str()), 0);
  ASSERT_EQ(container.Run("ip addr add 192.0.2.10/24 dev mvc"), 0);
  ASSERT_EQ(container.Run("ip addr add 2001:db8::10/64 dev mvc nodad"), 0);
  ASSERT_EQ(container.Run("ip addr add 192.0.2.11/24 dev mvd"), 0);
  ASSERT_EQ(elsewhere.Run("ip addr add 192.0.2.10/24 dev mvo"), 0);
  for (const auto& [ns, link] : {std::pair(&container, "mvc"), {&container, "mvd"}, {&elsewhere, "mvo"}}) {
    ASSERT_EQ(ns->Run(std::string("ip link set dev ") + link + " up"), 0);
  }
  // The plugin's own namespace: a link with the same MAC and address stays.
  ASSERT_TRUE(links_->CreateVethPair("hx", "hy").ok());
  ASSERT_EQ(std::system("ip link set dev hx address 02:42:c0:00:02:0a"), 0);
  ASSERT_TRUE(links_->AddHostAddress("hx", *IpAddress::Parse("192.0.2.10")).ok());
  ASSERT_TRUE(links_->SetUp("hx").ok());

  auto take_off = [&](const std::string& address) {
    return [address] {
      auto links = nl::LinkManager::Open();
      if (!links.ok()) return kCallFailed;
      (*links)->SetOwnerTag("static-macvlan:00000000000000a1");
      Result<ContainerLinkDeletion> deleted =
          (*links)->DeleteContainerLink("02:42:c0:00:02:0a", *IpAddress::Parse(address), "eth1");
      if (!deleted.ok()) return kCallFailed;
      return *deleted == ContainerLinkDeletion::kDeleted ? kTookItOff : kOtherOutcome;
    };
  };
  std::vector<int> without_net_admin = plugin;
  std::erase(without_net_admin, CAP_NET_ADMIN);
  EXPECT_EQ(AsManagedPlugin(without_net_admin, container.path(), take_off("192.0.2.10")), kCallFailed)
      << "needed no CAP_NET_ADMIN";
  EXPECT_TRUE(container.Up("mvc"));
  EXPECT_EQ(AsManagedPlugin(plugin, container.path(), take_off("192.0.2.10")), kTookItOff)
      << "the managed plugin's capabilities cannot take a container's address off the wire";
  std::string links;
  container.Run("ip -o link show", &links);
  EXPECT_EQ(links.find("mvc"), std::string::npos) << "the container's link is still there:\n" << links;
  EXPECT_TRUE(container.Up("mvd")) << "carries no such address";
  EXPECT_TRUE(elsewhere.Up("mvo")) << "another namespace's link with another MAC";
  ASSERT_TRUE(links_->Find("hx")->has_value());
  EXPECT_TRUE((*links_->Find("hx"))->up) << "the plugin's own namespace is left alone";
}

// The capabilities the .deb's systemd unit keeps (CapabilityBoundingSet=) are enough to take a
// container's address off the wire, and without CAP_NET_ADMIN they are not. Nothing needs
// CAP_SYS_ADMIN any more (no setns), so the unit does not keep it.
std::vector<int> UnitCapabilities() {
  std::ifstream unit(SMV_SERVICE_UNIT);
  std::vector<int> caps;
  for (std::string line; std::getline(unit, line);) {
    if (!line.starts_with("CapabilityBoundingSet=")) continue;
    std::istringstream names(line.substr(line.find('=') + 1));
    for (std::string name; names >> name;) {
      if (name == "CAP_NET_ADMIN") caps.push_back(CAP_NET_ADMIN);
      if (name == "CAP_NET_RAW") caps.push_back(CAP_NET_RAW);
      if (name == "CAP_SYS_ADMIN") caps.push_back(CAP_SYS_ADMIN);
    }
  }
  return caps;
}

TEST_F(NetnsTest, TheServiceUnitsCapabilitiesAreEnoughToDeleteAContainersLinkAndNetAdminIsNeeded) {
  const std::vector<int> unit = UnitCapabilities();
  ASSERT_FALSE(unit.empty()) << "no CapabilityBoundingSet= in " << SMV_SERVICE_UNIT;
  EXPECT_EQ(std::count(unit.begin(), unit.end(), CAP_SYS_ADMIN), 0) << "kept, though nothing needs it";
  ContainerNetns container;
  ASSERT_TRUE(container.ok());
  ASSERT_TRUE(links_->SetUp("eth1").ok());
  ASSERT_TRUE(links_->CreateMacvlan({"mvc", "eth1", "bridge", 0, "02:42:c0:00:02:0a"}).ok());
  ASSERT_EQ(std::system(("ip link set dev mvc netns " + container.pid()).c_str()), 0);
  ASSERT_EQ(container.Run("ip addr add 192.0.2.10/24 dev mvc"), 0);
  ASSERT_EQ(container.Run("ip link set dev mvc up"), 0);
  auto take_off = [] {
    auto links = nl::LinkManager::Open();
    if (!links.ok()) return kCallFailed;
    Result<ContainerLinkDeletion> deleted =
        (*links)->DeleteContainerLink("02:42:c0:00:02:0a", *IpAddress::Parse("192.0.2.10"), "eth1");
    if (!deleted.ok()) return kCallFailed;
    return *deleted == ContainerLinkDeletion::kDeleted ? kTookItOff : kOtherOutcome;
  };
  std::vector<int> without_net_admin = unit;
  std::erase(without_net_admin, CAP_NET_ADMIN);
  EXPECT_EQ(AsManagedPlugin(without_net_admin, container.path(), take_off), kCallFailed) << "needed no CAP_NET_ADMIN";
  EXPECT_TRUE(container.Up("mvc"));
  EXPECT_EQ(AsManagedPlugin(unit, container.path(), take_off), kTookItOff)
      << "the unit's capabilities cannot take a container's address off the wire";
  EXPECT_NE(container.Run("ip link show dev mvc"), 0);
}

// A stopped container: its namespace is gone (with the link dockerd had moved there), or dockerd
// moved the link back to the host. Neither is an error, and the host's link is left alone.
TEST_F(NetnsTest, DeleteContainerLinkOfAStoppedContainerIsNoNamespace) {
  const IpAddress address = *IpAddress::Parse("192.0.2.10");
  Result<ContainerLinkDeletion> never = links_->DeleteContainerLink("02:42:c0:00:02:0a", address, "eth1");
  ASSERT_TRUE(never.ok()) << never.status().message();
  EXPECT_EQ(*never, ContainerLinkDeletion::kNoNamespace) << "no other namespace at all";
  ASSERT_TRUE(links_->SetUp("eth1").ok());
  ASSERT_TRUE(links_->CreateMacvlan({"mvc", "eth1", "bridge", 0, "02:42:c0:00:02:0a"}).ok());
  ASSERT_TRUE(links_->CreateMacvlan({"mvb", "eth1", "bridge", 0, "02:42:c0:00:02:0b"}).ok());
  ContainerNetns stopped, left;
  ASSERT_TRUE(stopped.ok() && left.ok());
  ASSERT_EQ(std::system(("ip link set dev mvc netns " + stopped.pid()).c_str()), 0);
  ASSERT_EQ(stopped.Run("ip addr add 192.0.2.10/24 dev mvc"), 0);
  ASSERT_EQ(std::system(("ip link set dev mvb netns " + left.pid()).c_str()), 0);
  // Back in the test's host namespace (this process's), as dockerd moves it at a stop.
  ASSERT_EQ(left.Run("ip link set dev mvb netns " + std::to_string(getpid())), 0);
  ASSERT_TRUE(links_->AddHostAddress("mvb", address).ok());
  ASSERT_TRUE(links_->SetUp("mvb").ok());
  stopped.End();
  for (const char* mac : {"02:42:c0:00:02:0a", "02:42:c0:00:02:0b"}) {
    Result<ContainerLinkDeletion> gone = links_->DeleteContainerLink(mac, address, "eth1");
    ASSERT_TRUE(gone.ok()) << gone.status().message();
    EXPECT_EQ(*gone, ContainerLinkDeletion::kNoNamespace) << mac;
  }
  ASSERT_TRUE(links_->Find("mvb")->has_value()) << "the host's own link";
  EXPECT_TRUE((*links_->Find("mvb"))->up);
}

}  // namespace
}  // namespace smv::nl
