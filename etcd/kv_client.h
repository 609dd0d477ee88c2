#pragma once
// A small client for etcd 3.4's v3 key-value API, spoken through the JSON gateway every etcd
// member serves on its client port (POST /v3/kv/range, /v3/kv/txn). The gateway needs no
// generated code and reuses the HTTP library the plugin already has; etcd itself decides every
// write (compare-and-swap transactions), this client only carries them.
//
// Failure is never silent: an unreachable cluster or one without quorum is Code::kUnavailable
// with a message "etcd: DETAIL" (the client knows etcd, not what its user keeps there: the user
// adds that), and a transaction whose request went out but whose answer did not come back is
// reported as such (its outcome is unknown: read back, never guess). etcd out of space (its
// NOSPACE alarm) is Code::kResourceExhausted naming the alarm and the fix. No call throws: an
// answer that is not JSON or has a field of the wrong type is Code::kInternal naming the field
// (gateway_json.h), and it is not asked again (the same member would answer the same).
//
// Liveness: one attempt waits at most request_timeout for a member; a member that does not answer
// in time (hung, cut off) or refuses the connection costs that attempt, and the call, and every
// call after it, goes on to the next member. A read is sent again there; a transaction that went
// out is not (its outcome is unknown), but the read-back that settles it goes to the next member.
// When no member can even be connected to, one after the other, for 3 s (a member's restart is
// ridden out), the call ends then rather than at its deadline: "no member reachable".

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <stop_token>
#include <string>
#include <string_view>
#include <thread>
#include <variant>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "common/clock.h"
#include "common/status.h"

namespace httplib {
class Client;
}

namespace smv::etcd {

struct Reply;       // one POST's reply (member_http.h)
class WatchStream;  // a watch's stream of lines (watch_stream.h)

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
  int64_t lease = 0;  // the lease the key lives with (0: none): it goes when the lease does
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
  int64_t lease = 0;  // GrantLease's id: the key is deleted when that lease expires or is revoked
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

// One change seen by a watch. A delete carries the key and its revision only.
struct WatchEvent {
  bool deleted = false;
  KeyValue kv;
};
// Receives each batch of changes in revision order (a batch holds whole revisions); false ends
// the watch.
using WatchReceiver = std::function<bool(std::vector<WatchEvent>)>;

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

// How the user spells each setting, for errors that say what to change: the daemon passes its
// flags (--etcd-user, ...). The client knows etcd, not the daemon's command line.
struct SettingNames {
  std::string user = "the etcd user";
  std::string ca_file = "the CA file";
  std::string cert_file = "the client certificate";
  std::string key_file = "the client key";
};

struct ClientOptions {
  std::vector<Endpoint> endpoints;
  SettingNames names;
  TlsFiles tls;
  // etcd's user authentication (etcdctl auth enable): a token is asked for with these and renewed
  // when etcd says it expired. Empty user: none.
  std::string user;
  std::string password;
  // How long one call may take across every member it tries; then it is Unavailable.
  std::chrono::milliseconds deadline{10000};
  std::chrono::milliseconds connect_timeout{1000};
  // How long one attempt waits for a member's answer before the call goes on to the next member:
  // well below the deadline, so that a hung or cut-off member costs one attempt, not the call. A
  // healthy member answers in milliseconds, and an election (one --election-timeout, 1 s by
  // default) mostly fits; a transaction not answered in time has an unknown outcome (see above).
  std::chrono::milliseconds request_timeout{1500};
  // How often a Watch checks that its member still answers (a hung member sends nothing, as a
  // quiet book does): a member that does not answer a read within request_timeout ends the watch.
  std::chrono::milliseconds watch_check_interval{2000};
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
  Result<RangeResult> GetPrefix(std::string_view prefix, int64_t limit = 0, int64_t revision = 0,
                                Deadline deadline = std::nullopt);
  // GetPrefix's keys, without their values (each KeyValue's value is empty), at most `limit`.
  Result<RangeResult> GetPrefixKeys(std::string_view prefix, int64_t limit, Deadline deadline = std::nullopt);
  Result<TxnResult> Commit(const Txn& txn, Deadline deadline = std::nullopt);

  // etcd leases (keys put with one go when it expires or is revoked). GrantLease answers its id.
  Result<int64_t> GrantLease(std::chrono::seconds ttl, Deadline deadline = std::nullopt);
  // Renews the lease for its whole TTL; kNotFound once it has expired or was revoked.
  Status KeepLeaseAlive(int64_t lease, Deadline deadline = std::nullopt);
  // Seconds the lease has left (kNotFound: expired or revoked).
  Result<int64_t> LeaseTimeToLive(int64_t lease, Deadline deadline = std::nullopt);
  // Ends the lease and deletes its keys; a lease that is gone already is OK.
  Status RevokeLease(int64_t lease, Deadline deadline = std::nullopt);

  // Follows every key under `prefix` from `start_revision` on, on one member (POST /v3/watch,
  // a stream of JSON lines), until the receiver returns false or StopWatch is called (OK), or
  // the stream breaks, its member stops answering or no member answers (kUnavailable: watch
  // again from the next revision; the next watch asks the next member). A refused auth token is
  // renewed and the watch sent again. A start revision etcd has compacted away is kAborted: list
  // again, then watch from there.
  // Only one Watch at a time, and not beside other calls: give a watch its own client.
  Status Watch(std::string_view prefix, int64_t start_revision, const WatchReceiver& receive);
  // From another thread: ends the Watch in progress, and any started after.
  void StopWatch();
  // From another thread: ends the Watch in progress only (it returns OK).
  void InterruptWatch();

  const ClientOptions& options() const { return options_; }
  // The member the next call goes to first (the last one that answered, or the one after the
  // last that failed).
  const Endpoint& preferred() const;

 private:
  struct CallRequest;   // what one call sends, and whether it may be sent again (kv_client.cc)
  struct CallProgress;  // what one call's attempts came to so far (kv_client.cc)
  struct WatchEnd;      // how one watch on one member ended (watch.cc)
  struct WatchStops;    // who ended it (watch.cc)
  // POSTs `body` to `path`, trying members from the preferred one until the deadline.
  // `idempotent`: a request whose answer was lost may be sent again to another member.
  Result<std::string> Call(const std::string& path, const std::string& body, bool idempotent, Deadline deadline);
  // One attempt at one member: it waits at most request_timeout and never past `left`.
  Reply SendOnce(const Endpoint& member, const CallRequest& call, Millis left) const;
  // After `member` failed: the next member, a pause once every member failed, or the call's end
  // (non-OK) when no member could be reached for the grace.
  Status PassOver(const Reply& reply, const Endpoint& member, Millis left, SteadyClock::time_point attempt_began,
                  CallProgress& progress);
  // Call with a JSON request and answer.
  Result<nlohmann::json> CallJson(const std::string& path, const nlohmann::json& request, bool idempotent,
                                  Deadline deadline);
  void Rotate();  // the next call goes to the next member first
  Result<RangeResult> Range(const nlohmann::json& request, Deadline deadline);
  // Asks etcd for a token for options_.user (kPermissionDenied for wrong credentials).
  Status Authenticate(Deadline deadline);
  // One watch on the preferred member.
  WatchEnd WatchOnce(std::string_view prefix, int64_t start_revision, const WatchReceiver& receive);
  // Makes `http` the connection StopWatch and InterruptWatch end; false when stopped for good.
  bool BeginWatch(httplib::Client* http);
  WatchStops FinishWatch();
  // What the watch's end means for the caller: OK, or why it failed and whether its member did.
  WatchEnd JudgeWatchEnd(const WatchStream& stream, const WatchStops& stops, const Endpoint& member) const;
  // Ends the watch in progress when its member stops answering reads (runs beside WatchOnce).
  std::jthread CheckWatchedMemberEvery(const Endpoint& member, std::string_view prefix);
  void CheckWatchedMember(std::stop_token stop, Endpoint member, std::string token, std::string probe);

  ClientOptions options_;
  size_t preferred_ = 0;
  std::mutex watch_mu_;                  // guards the ones below: StopWatch comes from another thread
  httplib::Client* watching_ = nullptr;  // the connection of the Watch in progress
  bool watch_stopped_ = false;
  bool watch_interrupted_ = false;
  bool watched_member_hung_ = false;  // the check ended the watch in progress
  uint64_t watch_generation_ = 0;     // Watch calls so far
  // Stops the watch in progress: for good (StopWatch), once (InterruptWatch), or because its
  // member stopped answering (the watch then returns kUnavailable).
  enum class WatchStop { kForGood, kOnce, kMemberHung };
  void EndWatch(WatchStop why);
  std::string token_;  // etcd's auth token; empty: none yet, or none needed
};

// The prefix range end etcd expects: `prefix` with its last byte incremented.
std::string PrefixEnd(std::string_view prefix);

}  // namespace smv::etcd
