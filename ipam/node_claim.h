#pragma once
// One live daemon per --node-name in a fleet. Two daemons that write as one node (a cloned VM, one
// name given to two hosts, the .deb service beside the managed plugin) share one commit key and
// one node's leases, and each frees the other's addresses. So serve claims the key
// <prefix>instance/<node> in etcd, put with an etcd lease of its own and holding who claims it
// (host, machine, boot, process, socket); it keeps the lease alive while it serves and revokes it
// when it stops. A start that finds the claim of another live daemon is refused, naming it.
//
// A daemon that died leaves its claim until its lease runs out (the TTL, 10 s): a restart on the
// same boot of the same machine takes over the claim of its dead predecessor at once; another
// host is told how long to wait.

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <stop_token>
#include <string>
#include <thread>

#include "common/status.h"
#include "etcd/kv_client.h"
#include "ipam/etcd_store.h"
#include "ipam/unavailable_gate.h"

namespace smv::ipam {

// Who holds a claim (the claim key's value, as JSON).
struct ClaimHolder {
  std::string host;        // hostname
  std::string machine_id;  // /etc/machine-id (cloned VMs may share it)
  std::string boot_id;     // /proc/sys/kernel/random/boot_id: one per running kernel
  int64_t pid = 0;         // meaningful on the same boot only
  std::string socket;      // the daemon's plugin socket
  std::string started;     // when it claimed, UTC
  std::string instance;    // random, one per start: tells this daemon's own claim from any other
  // This process, serving `socket`.
  static ClaimHolder ThisProcess(std::string socket);
};

struct NodeClaimOptions {
  std::string prefix = EtcdStoreOptions().prefix;
  std::string node;
  // How long a claim outlives a daemon that died without revoking it.
  std::chrono::seconds ttl{10};
  ClaimHolder holder;  // this daemon
};

class NodeClaim {
 public:
  // Claims options.node and keeps the claim alive (a thread) until destroyed, which revokes it.
  // kFailedPrecondition names the live daemon that holds the node already. With etcd unavailable
  // the daemon still starts (its host's containers need it) and the claim is taken once etcd
  // answers; it is then only logged if another daemon holds it.
  static Result<std::unique_ptr<NodeClaim>> Take(const etcd::ClientOptions& client, NodeClaimOptions options);
  ~NodeClaim();
  NodeClaim(const NodeClaim&) = delete;
  NodeClaim& operator=(const NodeClaim&) = delete;

  bool held() const { return lease_ != 0; }
  const std::string& key() const { return key_; }

 private:
  NodeClaim(const etcd::ClientOptions& client, NodeClaimOptions options);
  // One claim: creates the key with a new lease, or takes over a predecessor's. `deadline` bounds
  // each call to etcd.
  Status Claim(etcd::KvClient::Deadline deadline);
  // `answer` of etcd, named as the claim's (an unavailable etcd worded as the store's, once).
  Status Failed(const Status& answer) const;
  // The refusal naming the live daemon whose claim `seen` is.
  Status InUse(const etcd::KeyValue& seen, const std::optional<ClaimHolder>& holder, etcd::KvClient::Deadline deadline);
  // True when `holder`'s claim may be replaced by this daemon's: it is ours, or its daemon died on
  // this boot.
  bool MayTakeOver(const ClaimHolder& holder) const;
  void Keep(std::stop_token stop);  // the keeper thread

  etcd::KvClient client_;  // its own: the keeper thread calls it
  const NodeClaimOptions options_;
  const std::string key_;
  std::atomic<int64_t> lease_{0};  // 0: not held
  std::jthread keeper_;
};

}  // namespace smv::ipam
