#pragma once
// A small client for etcd 3.4's v3 key-value API, spoken through the JSON gateway every etcd
// member serves on its client port (POST /v3/kv/range, /v3/kv/txn). The gateway needs no
// generated code and reuses the HTTP library the plugin already has; etcd itself decides every
// write (compare-and-swap transactions), this client only carries them.
//
// Failure is never silent: an unreachable cluster or one without quorum is Code::kUnavailable
// with a message that says so, and a transaction whose request went out but whose answer did not
// come back is reported as such (its outcome is unknown: read back, never guess).

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "common/status.h"

namespace smv::etcd {

struct Endpoint {
  std::string host;
  int port = 0;
  bool operator==(const Endpoint&) const = default;
};

// "etcd://H1:2379,H2:2379" as the user wrote it for `option` (named in errors).
Result<std::vector<Endpoint>> ParseEndpoints(std::string_view spec, std::string_view option);

struct KeyValue {
  std::string key;
  std::string value;
  int64_t create_revision = 0;
  int64_t mod_revision = 0;
  int64_t version = 0;
};

struct RangeResult {
  std::vector<KeyValue> kvs;
  int64_t revision = 0;  // the store's revision the answer was read at
  bool more = false;
};

// One comparison of a transaction; etcd compares with "equal".
struct Compare {
  enum class Target { kCreateRevision, kModRevision, kValue };
  std::string key;
  Target target = Target::kCreateRevision;
  int64_t revision = 0;  // kCreateRevision 0 means "the key does not exist"
  std::string value;     // kValue only
};

struct PutOp {
  std::string key;
  std::string value;
};
struct DeleteOp {
  std::string key;
};
using Op = std::variant<PutOp, DeleteOp>;

struct Txn {
  std::vector<Compare> compares;
  std::vector<Op> success;  // applied when every comparison holds
  std::vector<Op> failure;  // applied otherwise
};

struct TxnResult {
  bool succeeded = false;
  int64_t revision = 0;
};

// Client TLS: with any file given, every member is spoken to over https and its certificate
// checked against `ca_file` (the system's CAs when empty); `cert_file` + `key_file` identify this
// client to members started with --client-cert-auth.
struct TlsFiles {
  std::string ca_file;
  std::string cert_file;
  std::string key_file;
  bool enabled() const { return !ca_file.empty() || !cert_file.empty() || !key_file.empty(); }
};

struct ClientOptions {
  std::vector<Endpoint> endpoints;
  TlsFiles tls;
  // etcd's user authentication (etcdctl auth enable): a token is asked for with these and renewed
  // when etcd says it expired. Empty user: none.
  std::string user;
  std::string password;
  // How long one call may take across every member it tries; then it is Unavailable.
  std::chrono::milliseconds deadline{10000};
  std::chrono::milliseconds connect_timeout{1000};
  // Long enough for etcd to answer itself after electing a new leader (its own limit is about
  // 5 s + 2 election timeouts): an answer that never came leaves a write's outcome unknown.
  std::chrono::milliseconds request_timeout{9000};
};

class KvClient {
 public:
  explicit KvClient(ClientOptions options);
  ~KvClient();
  KvClient(const KvClient&) = delete;
  KvClient& operator=(const KvClient&) = delete;

  // `deadline` (default: the client's) bounds one call across every member it tries.
  using Deadline = std::optional<std::chrono::milliseconds>;
  Result<RangeResult> Get(std::string_view key, Deadline deadline = std::nullopt);
  // Every key that starts with `prefix`, at most `limit` (0: all), read at `revision` (0: now).
  Result<RangeResult> GetPrefix(std::string_view prefix, int64_t limit = 0, int64_t revision = 0);
  Result<TxnResult> Commit(const Txn& txn, Deadline deadline = std::nullopt);

  // The member the next call goes to first (the last one that answered).
  const Endpoint& preferred() const;

 private:
  // POSTs `body` to `path`, trying members from the preferred one until the deadline.
  // `idempotent`: a request whose answer was lost may be sent again to another member.
  Result<std::string> Call(const std::string& path, const std::string& body, bool idempotent, Deadline deadline);
  Result<RangeResult> Range(const nlohmann::json& request, Deadline deadline);
  // Asks etcd for a token for options_.user (kPermissionDenied for wrong credentials).
  Status Authenticate(Deadline deadline);

  ClientOptions options_;
  size_t preferred_ = 0;
  std::string token_;  // etcd's auth token; empty: none yet, or none needed
};

// The prefix range end etcd expects: `prefix` with its last byte incremented.
std::string PrefixEnd(std::string_view prefix);

}  // namespace smv::etcd
