#include "ipam/node_claim.h"

#include <fmt/chrono.h>
#include <fmt/format.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cerrno>
#include <condition_variable>
#include <fstream>
#include <mutex>
#include <random>
#include <utility>

#include <nlohmann/json.hpp>

#include "ipam/stop_wait.h"

namespace smv::ipam {
namespace {

using nlohmann::json;

// A revocation at stop waits this long at most: a stop never hangs on etcd.
constexpr std::chrono::milliseconds kRevokeBudget{2000};
// Claims tried before concluding that the key keeps changing under this daemon.
constexpr int kClaimAttempts = 3;

std::string FirstLine(const char* path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line;
}

// Whether process `pid` of this boot still runs (EPERM: it does, as another user's).
bool ProcessAlive(int64_t pid) { return pid > 0 && (kill(static_cast<pid_t>(pid), 0) == 0 || errno == EPERM); }

std::string Encode(const ClaimHolder& h) {
  return json{{"host", h.host},     {"machine_id", h.machine_id}, {"boot_id", h.boot_id},  {"pid", h.pid},
              {"socket", h.socket}, {"started", h.started},       {"instance", h.instance}}
      .dump();
}

std::optional<ClaimHolder> Decode(const std::string& value) {
  const json j = json::parse(value, nullptr, false);
  if (!j.is_object()) return std::nullopt;
  const auto text = [&j](const char* field) {
    auto it = j.find(field);
    return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
  };
  auto pid = j.find("pid");
  return ClaimHolder{.host = text("host"),
                     .machine_id = text("machine_id"),
                     .boot_id = text("boot_id"),
                     .pid = pid != j.end() && pid->is_number_integer() ? pid->get<int64_t>() : 0,
                     .socket = text("socket"),
                     .started = text("started"),
                     .instance = text("instance")};
}

}  // namespace

ClaimHolder ClaimHolder::ThisProcess(std::string socket) {
  char host[256] = {};
  gethostname(host, sizeof host - 1);
  std::random_device random;
  return {.host = host,
          .machine_id = FirstLine("/etc/machine-id"),
          .boot_id = FirstLine("/proc/sys/kernel/random/boot_id"),
          .pid = getpid(),
          .socket = std::move(socket),
          .started = fmt::format("{:%Y-%m-%dT%H:%M:%SZ}", fmt::gmtime(std::time(nullptr))),
          .instance = fmt::format("{:08x}{:08x}", random(), random())};
}

NodeClaim::NodeClaim(const etcd::ClientOptions& client, NodeClaimOptions options)
    : client_(client), options_(std::move(options)), key_(BookKeys(options_.prefix).Instance(options_.node)) {}

Result<std::unique_ptr<NodeClaim>> NodeClaim::Take(const etcd::ClientOptions& client, NodeClaimOptions options) {
  if (options.node.empty() || options.node.find('/') != std::string::npos) {
    return InvalidArgument(fmt::format("--node-name \"{}\": want a non-empty name without '/'", options.node));
  }
  std::unique_ptr<NodeClaim> claim(new NodeClaim(client, std::move(options)));
  if (Status claimed = claim->Claim(std::nullopt); claimed.code() == Code::kUnavailable) {
    spdlog::warn("--node-name {} is not claimed yet (etcd does not answer); claiming it once etcd does: {}",
                 claim->options_.node, claimed.message());
  } else if (!claimed.ok()) {
    return claimed;
  }
  claim->keeper_ = std::jthread([raw = claim.get()](std::stop_token stop) { raw->Keep(stop); });
  return claim;
}

NodeClaim::~NodeClaim() {
  keeper_ = {};  // stops and joins the keeper first: it may claim again
  if (lease_ == 0) return;
  if (Status revoked = client_.RevokeLease(lease_, kRevokeBudget); !revoked.ok()) {
    spdlog::warn("the claim of --node-name {} stays until its lease expires ({} s): {}", options_.node,
                 options_.ttl.count(), revoked.message());
  }
}

bool NodeClaim::MayTakeOver(const ClaimHolder& holder) const {
  if (holder.instance == options_.holder.instance) return true;
  return !holder.boot_id.empty() && holder.boot_id == options_.holder.boot_id && !ProcessAlive(holder.pid);
}

Status NodeClaim::Failed(const Status& answer) const {
  return SharedStoreUnavailable(answer).Annotate(fmt::format("claim --node-name {}", options_.node));
}

Status NodeClaim::Claim(etcd::KvClient::Deadline deadline) {
  Result<int64_t> lease = client_.GrantLease(options_.ttl, deadline);
  if (!lease.ok()) return Failed(lease.status());
  for (int attempt = 0; attempt < kClaimAttempts; ++attempt) {
    Result<etcd::RangeResult> seen = client_.Get(key_, deadline);
    if (!seen.ok()) {
      static_cast<void>(client_.RevokeLease(*lease, kRevokeBudget));
      return Failed(seen.status());
    }
    etcd::Compare unchanged{.key = key_, .target = etcd::Compare::Target::kCreateRevision, .revision = 0};
    if (!seen->kvs.empty()) {
      const etcd::KeyValue& kv = seen->kvs.front();
      std::optional<ClaimHolder> holder = Decode(kv.value);
      if (!holder || !MayTakeOver(*holder)) {
        static_cast<void>(client_.RevokeLease(*lease, kRevokeBudget));
        return InUse(kv, holder, deadline);
      }
      unchanged = {.key = key_, .target = etcd::Compare::Target::kModRevision, .revision = kv.mod_revision};
    }
    // A lost answer is settled by the next read: the key then holds this daemon's instance.
    const etcd::Txn claim{.compares = {unchanged}, .success = {etcd::PutOp{key_, Encode(options_.holder), *lease}}};
    Result<etcd::TxnResult> put = client_.Commit(claim, deadline);
    if (!put.ok() && put.status().code() != Code::kUnavailable) {
      static_cast<void>(client_.RevokeLease(*lease, kRevokeBudget));
      return Failed(put.status());
    }
    if (put.ok() && put->succeeded) {
      lease_ = *lease;
      spdlog::info("--node-name {} claimed in etcd ({}, lease {:x}, {} s)", options_.node, key_, *lease,
                   options_.ttl.count());
      return OkStatus();
    }
  }
  static_cast<void>(client_.RevokeLease(*lease, kRevokeBudget));
  return Unavailable(
      fmt::format("claim --node-name {}: etcd did not settle the claim {} (no answer, or the key kept changing)",
                  options_.node, key_));
}

Status NodeClaim::InUse(const etcd::KeyValue& seen, const std::optional<ClaimHolder>& holder,
                        etcd::KvClient::Deadline deadline) {
  Result<int64_t> left = client_.LeaseTimeToLive(seen.lease, deadline);
  const int64_t wait = left.ok() ? std::max<int64_t>(*left, 1) : options_.ttl.count();
  // A clone of this machine has its host name, and maybe its machine-id: the boot id tells them apart.
  const std::string same_name =
      holder && holder->host == options_.holder.host ? fmt::format(", boot {}: this host's name", holder->boot_id) : "";
  const std::string who =
      holder ? fmt::format("a live daemon on host {} (pid {}, socket {}, machine-id {}{}, since {})", holder->host,
                           holder->pid, holder->socket, holder->machine_id, same_name, holder->started)
             : fmt::format("a daemon whose claim is unreadable (\"{}\")", seen.value.substr(0, 200));
  return FailedPrecondition(fmt::format(
      "--node-name {} is in use by {}: two daemons that write as one node would free each other's addresses; give "
      "this host its own --node-name, or stop that daemon. If that host is gone, its claim ({} in etcd) expires "
      "within {} s: wait {} s and start again",
      options_.node, who, key_, wait, wait));
}

void NodeClaim::Keep(std::stop_token stop) {
  const auto period = std::chrono::duration_cast<std::chrono::milliseconds>(options_.ttl) / 3;
  while (!StopRequestedWithin(stop, period)) {
    if (lease_ != 0) {
      Status kept = client_.KeepLeaseAlive(lease_, period);
      if (kept.ok()) continue;
      if (kept.code() != Code::kNotFound) {
        spdlog::debug("the claim of --node-name {} was not renewed this time: {}", options_.node, kept.message());
        continue;
      }
      // etcd did not hear from this daemon for a whole TTL (cut off): claim again.
      spdlog::warn("the claim of --node-name {} expired; claiming it again", options_.node);
      lease_ = 0;
    }
    if (Status claimed = Claim(period); claimed.code() == Code::kFailedPrecondition) {
      spdlog::error("{}; this daemon goes on, and its writes may free the other's addresses", claimed.message());
    } else if (!claimed.ok()) {
      spdlog::debug("--node-name {} is not claimed yet: {}", options_.node, claimed.message());
    }
  }
}

}  // namespace smv::ipam
