#pragma once
// Every test enters a fresh, empty network namespace (gtest_discover_tests runs each case in its
// own process), so kernel tests need no cleanup and cannot touch the host's interfaces. A veth
// pair stands in for the NIC: this kernel has no dummy links.

#include <gtest/gtest.h>
#include <linux/if_link.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/veth.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "driver/netlink/link_manager.h"

namespace smv::testing {

// A route netlink request built attribute by attribute (only what CreateVethPair needs).
class RtRequest {
 public:
  RtRequest(uint16_t type, uint16_t flags) {
    nlmsghdr header{.nlmsg_len = NLMSG_HDRLEN, .nlmsg_type = type, .nlmsg_flags = flags, .nlmsg_seq = 1};
    Append(&header, sizeof header);
  }
  void Append(const void* data, size_t size) {
    const auto* bytes = static_cast<const unsigned char*>(data);
    bytes_.insert(bytes_.end(), bytes, bytes + size);
    bytes_.resize(NLMSG_ALIGN(bytes_.size()));
  }
  // Opens a nested attribute; Close(the returned offset) sets its length.
  size_t Open(uint16_t type) { return Put(type, nullptr, 0); }
  void Close(size_t at) { Attr(at)->rta_len = static_cast<uint16_t>(bytes_.size() - at); }
  size_t Put(uint16_t type, const void* data, size_t size) {
    const size_t at = bytes_.size();
    rtattr attr{.rta_len = static_cast<uint16_t>(RTA_LENGTH(size)), .rta_type = type};
    Append(&attr, sizeof attr);
    bytes_.resize(at + RTA_LENGTH(size));
    if (size > 0) std::memcpy(bytes_.data() + at + RTA_LENGTH(0), data, size);
    bytes_.resize(NLMSG_ALIGN(bytes_.size()));
    return at;
  }
  void PutString(uint16_t type, const std::string& value) { Put(type, value.c_str(), value.size() + 1); }
  // Sends the request and returns the kernel's answer: 0, or a negative errno.
  int Send() {
    reinterpret_cast<nlmsghdr*>(bytes_.data())->nlmsg_len = static_cast<uint32_t>(bytes_.size());
    const int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
    if (fd < 0) return -errno;
    int answer = -EIO;
    if (send(fd, bytes_.data(), bytes_.size(), 0) == static_cast<ssize_t>(bytes_.size())) {
      alignas(nlmsghdr) unsigned char reply[4096];
      const ssize_t n = recv(fd, reply, sizeof reply, 0);
      const auto* hdr = reinterpret_cast<const nlmsghdr*>(reply);
      if (n >= static_cast<ssize_t>(NLMSG_LENGTH(sizeof(nlmsgerr))) && hdr->nlmsg_type == NLMSG_ERROR) {
        answer = static_cast<const nlmsgerr*>(NLMSG_DATA(hdr))->error;
      }
    }
    close(fd);
    return answer;
  }

 private:
  rtattr* Attr(size_t at) { return reinterpret_cast<rtattr*>(bytes_.data() + at); }
  std::vector<unsigned char> bytes_;
};

// A veth pair `name` / `peer` in the calling thread's network namespace: a test's stand-in for a
// NIC (and for a link that is not ours). Test-only, so not a LinkOps verb.
inline Status CreateVethPair(const std::string& name, const std::string& peer) {
  RtRequest request(RTM_NEWLINK, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL);
  const ifinfomsg link{};
  request.Append(&link, sizeof link);
  request.PutString(IFLA_IFNAME, name);
  const size_t info = request.Open(IFLA_LINKINFO);
  request.PutString(IFLA_INFO_KIND, "veth");
  const size_t data = request.Open(IFLA_INFO_DATA);
  const size_t peer_info = request.Open(VETH_INFO_PEER);
  request.Append(&link, sizeof link);
  request.PutString(IFLA_IFNAME, peer);
  request.Close(peer_info);
  request.Close(data);
  request.Close(info);
  if (int rc = request.Send(); rc < 0) {
    return Internal(fmt::format("create veth pair \"{}\"/\"{}\": {}", name, peer, std::strerror(-rc)));
  }
  return OkStatus();
}

// The LinkManager under test, plus what only tests do with links.
class TestLinkManager : public nl::LinkManager {
 public:
  static Result<std::unique_ptr<TestLinkManager>> Open() {
    Result<nl::NlSocket> sock = OpenSocket();
    if (!sock.ok()) return sock.status();
    return std::unique_ptr<TestLinkManager>(new TestLinkManager(std::move(*sock)));
  }
  Status CreateVethPair(const std::string& name, const std::string& peer) {
    return testing::CreateVethPair(name, peer);
  }

 private:
  explicit TestLinkManager(nl::NlSocket sock) : LinkManager(std::move(sock)) {}
};

class NetnsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (unshare(CLONE_NEWNET) != 0) {  // before any thread starts; needs CAP_SYS_ADMIN
      GTEST_SKIP() << "no private network namespace (" << std::strerror(errno) << "); run as root";
    }
    // Sockets bind to the namespace they were created in, so open them only after unshare.
    auto links = TestLinkManager::Open();
    ASSERT_TRUE(links.ok()) << links.status().message();
    links_ = std::move(links).value();
    ASSERT_TRUE(links_->CreateVethPair("eth1", "sw0").ok());
    ASSERT_TRUE(links_->SetUp("sw0").ok());
  }

  // True when this kernel can make 802.1Q links (the UML guest can, the CI host cannot).
  bool KernelHasVlan() {
    Status s = links_->CreateVlan("sw0", 4000, "probe.4000");
    if (s.ok()) (void)links_->Delete("probe.4000");
    return s.ok();
  }

  std::unique_ptr<TestLinkManager> links_;
};

}  // namespace smv::testing
