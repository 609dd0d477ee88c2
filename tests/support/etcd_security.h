#pragma once
// What the etcd security tests set up: certificates made with the openssl command (a CA, a
// certificate for the members that also serves as a client certificate, a client certificate for
// the plugin, without a Common Name as etcd's gateway wants it, and a second CA that signed none of
// them), and etcd users enabled with etcdctl.

#include <cstdlib>
#include <fstream>
#include <string>

#include <gtest/gtest.h>

#include "tests/support/etcd_cluster.h"

namespace smv::testing {

struct TestCertificates {
  std::string ca, server_cert, server_key, client_cert, client_key, other_ca;
};

// Writes the certificates into `dir`; fails the test when openssl does.
inline TestCertificates MakeTestCertificates(const std::string& dir) {
  const std::string script = R"(set -e
cd ")" + dir + R"("
key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
key ca.key; key other-ca.key; key server.key; key client.key
openssl req -x509 -new -key ca.key -out ca.crt -days 2 -subj /CN=smv-test-ca
openssl req -x509 -new -key other-ca.key -out other-ca.crt -days 2 -subj /CN=smv-other-ca
printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n' > server.ext
printf 'extendedKeyUsage=clientAuth\n' > client.ext
openssl req -new -key server.key -out server.csr -subj /CN=127.0.0.1
openssl req -new -key client.key -out client.csr -subj /O=smv-node
openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out server.crt -days 2 -extfile server.ext 2>/dev/null
openssl x509 -req -in client.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out client.crt -days 2 -extfile client.ext 2>/dev/null
)";
  std::ofstream(dir + "/make-certs.sh") << script;
  EXPECT_EQ(std::system(("bash " + dir + "/make-certs.sh").c_str()), 0) << "openssl could not make test certificates";
  return {dir + "/ca.crt",     dir + "/server.crt", dir + "/server.key",
          dir + "/client.crt", dir + "/client.key", dir + "/other-ca.crt"};
}

// root (to switch authentication on) and `user`, who may read and write `prefix` only.
// `etcdctl_flags`: how etcdctl reaches a TLS cluster (--cacert=... --cert=... --key=...).
inline void EnableEtcdAuth(const EtcdCluster& cluster, const std::string& user, const std::string& password,
                           const std::string& prefix, const std::string& etcdctl_flags = "") {
  const std::string etcdctl = "ETCDCTL_API=3 etcdctl --endpoints=127.0.0.1:" + std::to_string(cluster.ClientPort(0)) +
                              " " + etcdctl_flags + " ";
  for (const std::string& command :
       {std::string("user add root:root-secret"), "user add " + user + ":" + password, "role add " + user,
        "role grant-permission " + user + " --prefix=true readwrite " + prefix, "user grant-role " + user + " " + user,
        std::string("auth enable")}) {
    ASSERT_EQ(std::system((etcdctl + command + " >/dev/null 2>&1").c_str()), 0) << "etcdctl " << command;
  }
}

}  // namespace smv::testing
