// The etcd client against a real 3-member etcd 3.4 cluster that wants TLS client certificates,
// and against one with user authentication: the right files and credentials work, wrong ones
// are refused with a message naming what to fix, and an expired token is renewed by itself.

#include <csignal>
#include <string>

#include <gtest/gtest.h>

#include "etcd/kv_client.h"
#include "tests/support/etcd_cluster.h"
#include "tests/support/etcd_security.h"

namespace smv::etcd {
namespace {

using smv::testing::EtcdTest;
using smv::testing::TestCertificates;

Txn Put(const std::string& key, const std::string& value) { return {.success = {PutOp{key, value}}}; }

class EtcdTlsTest : public EtcdTest {
 protected:
  void ConfigureCluster() override {
    // A member that ends a TLS handshake makes the client's next write raise SIGPIPE; the daemon
    // ignores it (main.cc) and so must this test binary.
    std::signal(SIGPIPE, SIG_IGN);
    certs_ = smv::testing::MakeTestCertificates(dir_.path());
    cluster_.UseTls({.ca = certs_.ca, .server_cert = certs_.server_cert, .server_key = certs_.server_key});
  }
  KvClient Client(TlsFiles tls) {
    // The errors name each setting as the caller spells it (the daemon: its flags).
    return KvClient({.endpoints = cluster_.endpoints(),
                     .names = {.ca_file = "--etcd-cacert"},
                     .tls = std::move(tls),
                     .deadline = std::chrono::seconds(3)});
  }
  TestCertificates certs_;
};

TEST_F(EtcdTlsTest, TheRightFilesWorkAndAWrongCaOrNoClientCertificateIsRefused) {
  KvClient good = Client({.ca_file = certs_.ca, .cert_file = certs_.client_cert, .key_file = certs_.client_key});
  auto put = good.Commit(Put("/smv-test/tls", "over tls"));
  ASSERT_TRUE(put.ok()) << put.status().message();
  auto got = good.Get("/smv-test/tls");
  ASSERT_TRUE(got.ok()) << got.status().message();
  ASSERT_EQ(got->kvs.size(), 1u);
  EXPECT_EQ(got->kvs[0].value, "over tls");

  // A CA that did not sign the members' certificate: refused before anything is sent.
  KvClient wrong_ca =
      Client({.ca_file = certs_.other_ca, .cert_file = certs_.client_cert, .key_file = certs_.client_key});
  auto refused = wrong_ca.Get("/smv-test/tls");
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), Code::kUnavailable);
  EXPECT_NE(refused.status().message().find("--etcd-cacert"), std::string::npos) << refused.status().message();

  // Members started with --client-cert-auth refuse a client without a certificate.
  KvClient anonymous = Client({.ca_file = certs_.ca});
  auto no_cert = anonymous.Get("/smv-test/tls");
  ASSERT_FALSE(no_cert.ok());
  EXPECT_EQ(no_cert.status().code(), Code::kUnavailable) << no_cert.status().message();
}

class EtcdAuthTest : public EtcdTest {
 protected:
  void SetUp() override {
    EtcdTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    ASSERT_NO_FATAL_FAILURE(smv::testing::EnableEtcdAuth(cluster_, "smv", "smv-secret", "/smv-test/"));
  }
  KvClient Client(std::string user, std::string password) {
    return KvClient({.endpoints = cluster_.endpoints(),
                     .names = {.user = "--etcd-user"},
                     .user = std::move(user),
                     .password = std::move(password),
                     .deadline = std::chrono::seconds(3)});
  }
};

TEST_F(EtcdAuthTest, AUserWorksWithinItsPrefixAndEveryRefusalSaysWhy) {
  KvClient smv = Client("smv", "smv-secret");
  auto put = smv.Commit(Put("/smv-test/auth", "1"));
  ASSERT_TRUE(put.ok()) << put.status().message();

  auto outside = smv.Commit(Put("/elsewhere", "1"));
  ASSERT_FALSE(outside.ok());
  EXPECT_EQ(outside.status().code(), Code::kPermissionDenied) << outside.status().message();
  EXPECT_NE(outside.status().message().find("user \"smv\""), std::string::npos) << outside.status().message();

  KvClient nobody = Client("", "");
  auto anonymous = nobody.Get("/smv-test/auth");
  ASSERT_FALSE(anonymous.ok());
  EXPECT_EQ(anonymous.status().code(), Code::kPermissionDenied);
  EXPECT_NE(anonymous.status().message().find("--etcd-user"), std::string::npos) << anonymous.status().message();

  KvClient wrong = Client("smv", "not-the-password");
  auto refused = wrong.Get("/smv-test/auth");
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), Code::kPermissionDenied);
  EXPECT_NE(refused.status().message().find("refused the credentials of --etcd-user \"smv\""), std::string::npos)
      << refused.status().message();
}

// Switching authentication off and on invalidates every token, as an expired one is: the client
// asks for a new one and the write goes through (it was refused before anything was proposed).
TEST_F(EtcdAuthTest, AnInvalidatedTokenIsRenewedAndTheWriteSentAgain) {
  KvClient smv = Client("smv", "smv-secret");
  ASSERT_TRUE(smv.Commit(Put("/smv-test/token", "1")).ok());
  const std::string etcdctl =
      "ETCDCTL_API=3 etcdctl --endpoints=127.0.0.1:" + std::to_string(smv::testing::EtcdCluster::ClientPort(0)) +
      " --user root:root-secret ";
  ASSERT_EQ(std::system((etcdctl + "auth disable >/dev/null 2>&1").c_str()), 0);
  ASSERT_EQ(std::system((etcdctl + "auth enable >/dev/null 2>&1").c_str()), 0);
  auto again = smv.Commit(Put("/smv-test/token", "2"));
  ASSERT_TRUE(again.ok()) << again.status().message();
  auto got = smv.Get("/smv-test/token");
  ASSERT_TRUE(got.ok());
  ASSERT_EQ(got->kvs.size(), 1u);
  EXPECT_EQ(got->kvs[0].value, "2");
  EXPECT_EQ(got->kvs[0].version, 2);  // written once per Commit, not twice
}

}  // namespace
}  // namespace smv::etcd
