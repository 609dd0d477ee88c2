#pragma once
// Every test enters a fresh, empty network namespace (gtest_discover_tests runs each case in its
// own process), so kernel tests need no cleanup and cannot touch the host's interfaces. A veth
// pair stands in for the NIC: this kernel has no dummy links.

#include <gtest/gtest.h>
#include <sched.h>

#include <cerrno>
#include <cstring>
#include <memory>

#include "driver/netlink/link_manager.h"

namespace smv::testing {

class NetnsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (unshare(CLONE_NEWNET) != 0) {  // before any thread starts; needs CAP_SYS_ADMIN
      GTEST_SKIP() << "no private network namespace (" << std::strerror(errno) << "); run as root";
    }
    // Sockets bind to the namespace they were created in, so open them only after unshare.
    auto links = nl::LinkManager::Open();
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

  std::unique_ptr<nl::LinkManager> links_;
};

}  // namespace smv::testing
