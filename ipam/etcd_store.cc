#include "ipam/etcd_store.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <chrono>
#include <map>
#include <optional>
#include <random>
#include <utility>

#include "ipam/records.h"

namespace smv::ipam {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// One call of this store (a load with its fence, a commit with its read-back) takes about this
// long at most (plus kMinResolveTime for a read-back): with etcd down or without quorum, an
// allocation that waits behind at most one such call is refused within 10 s.
constexpr milliseconds kCallBudget{7000};
// Leaves the read-back of a commit whose answer was lost at least this much time.
constexpr milliseconds kMinResolveTime{1000};

// Fence attempts before concluding that another process writes this node's commit key.
constexpr int kFenceAttempts = 5;
// How long a reload after a refused commit waits for the mirror to reach the refusal's revision
// before it reads etcd instead.
constexpr milliseconds kMirrorWait{500};
// Pauses of the watch thread after a failed list or a broken watch.
constexpr milliseconds kRelistPause{500};
constexpr milliseconds kRewatchPause{200};

// Holds while `key` is as it was at mod revision `revision`; 0: while it does not exist.
etcd::Compare Unchanged(const std::string& key, int64_t revision) {
  if (revision == 0) return {.key = key, .target = etcd::Compare::Target::kCreateRevision, .revision = 0};
  return {.key = key, .target = etcd::Compare::Target::kModRevision, .revision = revision};
}

// Holds while `key` is as this node last saw it (absent if it never saw it).
etcd::Compare ExpectAsSeen(const std::string& key, const std::unordered_map<std::string, int64_t>& revisions) {
  auto known = revisions.find(key);
  return Unchanged(key, known == revisions.end() ? 0 : known->second);
}

// Every write of the batches, in order, one per key (etcd refuses a key twice in a transaction):
// the last write of a key wins, as it would applied one after the other. nullopt: delete.
std::map<std::string, std::optional<std::string>> MergeWrites(const std::string& prefix,
                                                              std::span<const IpamBatch> batches) {
  std::map<std::string, std::optional<std::string>> writes;
  const std::string pools = prefix + "pool/", leases = prefix + "lease/", names = prefix + "reservation/";
  for (const IpamBatch& b : batches) {
    for (const PoolRecord& p : b.put_pools) writes[pools + records::PoolKey(p.config.id)] = records::EncodePool(p);
    for (const std::string& id : b.delete_pools) writes[pools + records::PoolKey(id)] = std::nullopt;
    for (const LeaseRecord& l : b.put_leases) {
      writes[leases + records::LeaseKey(l.pool_id, l.address)] = records::EncodeLease(l);
    }
    for (const auto& [pool_id, address] : b.delete_leases) {
      writes[leases + records::LeaseKey(pool_id, address)] = std::nullopt;
    }
    for (const ReservationRecord& r : b.put_reservations) {
      writes[names + records::ReservationKey(r.pool_id, r.name)] = records::EncodeReservation(r);
    }
    for (const auto& [pool_id, name] : b.delete_reservations) {
      writes[names + records::ReservationKey(pool_id, name)] = std::nullopt;
    }
  }
  return writes;
}

// Decodes the book's records, in key order as etcd and the mirror keep them, into a sink that
// wants pools first (lease/ < node/ < pool/ < reservation/).
class BookDecoder {
 public:
  BookDecoder(const std::string& prefix, IpamLoadSink& sink)
      : pools_(prefix + "pool/"),
        leases_(prefix + "lease/"),
        names_(prefix + "reservation/"),
        where_("etcd " + prefix),
        sink_(sink) {}
  Status Add(std::string_view key, const std::string& value) {
    if (key.starts_with(pools_)) {
      Result<PoolRecord> r = records::DecodePool(where_ + "pool/", key.substr(pools_.size()), value);
      if (!r.ok()) return r.status();
      sink_.OnPool(std::move(r).value());
    } else if (key.starts_with(leases_)) {
      Result<LeaseRecord> r = records::DecodeLease(where_ + "lease/", key.substr(leases_.size()), value);
      if (!r.ok()) return r.status();
      held_.push_back(std::move(r).value());
    } else if (key.starts_with(names_)) {
      Result<ReservationRecord> r =
          records::DecodeReservation(where_ + "reservation/", key.substr(names_.size()), value);
      if (!r.ok()) return r.status();
      reserved_.push_back(std::move(r).value());
    }  // node/ keys are not address records
    return OkStatus();
  }
  void Finish() {
    for (LeaseRecord& l : held_) sink_.OnLease(std::move(l));
    for (ReservationRecord& r : reserved_) sink_.OnReservation(std::move(r));
  }

 private:
  const std::string pools_, leases_, names_, where_;
  IpamLoadSink& sink_;
  std::vector<LeaseRecord> held_;
  std::vector<ReservationRecord> reserved_;
};

milliseconds Left(Clock::time_point until) {
  return std::max(kMinResolveTime, std::chrono::duration_cast<milliseconds>(until - Clock::now()));
}

}  // namespace

EtcdIpamStore::EtcdIpamStore(etcd::KvClient& client, EtcdStoreOptions options)
    : client_(client), options_(std::move(options)) {
  std::random_device random;
  instance_ = fmt::format("{}-{:08x}{:08x}", getpid(), random(), random());
}

Result<std::unique_ptr<EtcdIpamStore>> EtcdIpamStore::Open(etcd::KvClient& client, EtcdStoreOptions options) {
  if (options.node.empty() || options.node.find('/') != std::string::npos) {
    return InvalidArgument(fmt::format("--node-name \"{}\": want a non-empty name without '/'", options.node));
  }
  return std::unique_ptr<EtcdIpamStore>(new EtcdIpamStore(client, std::move(options)));
}

std::string EtcdIpamStore::CommitKey() const { return options_.prefix + "node/" + options_.node + "/commit"; }

std::string EtcdIpamStore::NextCommitId() { return fmt::format("{}:{}", instance_, ++commits_); }

Result<std::optional<int64_t>> EtcdIpamStore::FenceUnless(std::string_view applied_id, milliseconds budget) {
  const auto until = Clock::now() + budget;
  const std::string key = CommitKey();
  Status last = Unavailable(
      fmt::format("shared address store unavailable (etcd: no answer for {} within {} ms)", key, budget.count()));
  for (int attempt = 0; attempt < kFenceAttempts && (attempt == 0 || Clock::now() < until); ++attempt) {
    Result<etcd::RangeResult> seen = client_.Get(key, Left(until));
    if (!seen.ok()) return seen.status();
    const int64_t seen_revision = seen->kvs.empty() ? 0 : seen->kvs.front().mod_revision;
    if (!applied_id.empty() && !seen->kvs.empty() && seen->kvs.front().value == applied_id) {
      return std::optional<int64_t>(seen_revision);
    }
    // If a transaction still in flight applies first, the fence fails and the next read sees it.
    etcd::Txn txn{.compares = {Unchanged(key, seen_revision)}, .success = {etcd::PutOp{key, NextCommitId()}}};
    Result<etcd::TxnResult> fenced = client_.Commit(txn, Left(until));
    if (fenced.ok() && fenced->succeeded) {
      revisions_[key] = fenced->revision;
      return std::optional<int64_t>();
    }
    if (!fenced.ok()) last = fenced.status();  // maybe applied: the next read tells
  }
  if (Clock::now() >= until) return last;
  return Aborted(fmt::format("the commit key {} keeps changing: is another plugin running with --node-name {}?", key,
                             options_.node));
}

Status EtcdIpamStore::UnavailableSinceLocked(uint64_t seen) const {
  return unavailable_answers_ != seen ? last_unavailable_ : OkStatus();
}

void EtcdIpamStore::NoteAnswerLocked(const Status& answer) {
  if (answer.code() != Code::kUnavailable) return;
  last_unavailable_ = answer;
  ++unavailable_answers_;
}

Status EtcdIpamStore::LoadInto(IpamLoadSink& sink) {
  const uint64_t seen = unavailable_answers_;
  std::scoped_lock lock(mu_);
  SMV_RETURN_IF_ERROR(UnavailableSinceLocked(seen));
  Status loaded = LoadIntoLocked(sink);
  NoteAnswerLocked(loaded);
  return loaded;
}

Status EtcdIpamStore::LoadIntoLocked(IpamLoadSink& sink) {
  const auto until = Clock::now() + kCallBudget;
  const int64_t refused_at = std::exchange(refused_at_, 0);
  if (refused_at > 0 && !fence_needed_) {
    Status decoded = OkStatus();
    if (LoadFromMirror(sink, refused_at, decoded)) return decoded;
  }
  // After the fence no transaction of this node sent earlier can apply: what is read is final.
  if (!options_.read_only) {
    if (Result<std::optional<int64_t>> fenced = FenceUnless("", Left(until)); !fenced.ok()) return fenced.status();
    fence_needed_ = false;
  }
  Result<etcd::RangeResult> all = client_.GetPrefix(options_.prefix, 0, 0, Left(until));
  if (!all.ok()) return all.status();
  revisions_.clear();
  BookDecoder decoder(options_.prefix, sink);
  for (const etcd::KeyValue& kv : all->kvs) {
    revisions_[kv.key] = kv.mod_revision;
    SMV_RETURN_IF_ERROR(decoder.Add(kv.key, kv.value));
  }
  decoder.Finish();
  return OkStatus();
}

bool EtcdIpamStore::LoadFromMirror(IpamLoadSink& sink, int64_t at_least, Status& decoded) {
  std::unique_lock lock(mirror_mu_);
  if (watch_client_ == nullptr) return false;
  const bool reached = mirror_moved_.wait_for(
      lock, kMirrorWait, [&] { return stopping_ || (mirror_live_ && mirror_revision_ >= at_least); });
  if (!reached || stopping_) return false;
  revisions_.clear();
  BookDecoder decoder(options_.prefix, sink);
  for (const auto& [key, entry] : mirror_) {
    revisions_[key] = entry.mod_revision;
    decoded = decoder.Add(key, entry.value);
    if (!decoded.ok()) return true;
  }
  decoder.Finish();
  ++mirror_loads_;
  return true;
}

void EtcdIpamStore::StartWatch() {
  if (watch_client_ != nullptr) return;
  watch_client_ = std::make_unique<etcd::KvClient>(client_.options());
  watcher_ = std::thread([this] { FollowBook(); });
}

void EtcdIpamStore::PauseWatch(bool paused) {
  {
    std::scoped_lock lock(mirror_mu_);
    watch_paused_ = paused;
  }
  if (paused && watch_client_ != nullptr) watch_client_->InterruptWatch();
}

void EtcdIpamStore::FollowBook() {
  etcd::KvClient& client = *watch_client_;
  bool listed = false;
  auto paused = [&] {
    std::scoped_lock lock(mirror_mu_);
    return watch_paused_;
  };
  while (!stopping_) {
    if (paused()) {
      std::this_thread::sleep_for(milliseconds(20));
      continue;
    }
    if (!listed) {
      Result<etcd::RangeResult> all = client.GetPrefix(options_.prefix);
      if (!all.ok()) {
        spdlog::debug("listing the shared address book for its mirror failed: {}", all.status().message());
        std::this_thread::sleep_for(kRelistPause);
        continue;
      }
      std::scoped_lock lock(mirror_mu_);
      mirror_.clear();
      for (etcd::KeyValue& kv : all->kvs) mirror_[kv.key] = {std::move(kv.value), kv.mod_revision};
      mirror_revision_ = all->revision;
      mirror_live_ = listed = true;
      ++mirror_lists_;
      mirror_moved_.notify_all();
    }
    int64_t from = 0;
    {
      std::scoped_lock lock(mirror_mu_);
      from = mirror_revision_ + 1;
    }
    Status ended = client.Watch(options_.prefix, from, [&](std::vector<etcd::WatchEvent> batch) {
      std::scoped_lock lock(mirror_mu_);
      if (stopping_ || watch_paused_) return false;
      for (etcd::WatchEvent& e : batch) {
        if (e.deleted) {
          mirror_.erase(e.kv.key);
        } else {
          mirror_[e.kv.key] = {std::move(e.kv.value), e.kv.mod_revision};
        }
        mirror_revision_ = std::max(mirror_revision_, e.kv.mod_revision);
      }
      mirror_moved_.notify_all();
      return true;
    });
    if (stopping_) break;
    if (ended.code() == Code::kAborted) {  // compacted past what the mirror has: list again
      spdlog::info("the mirror of the shared address book lists it again: {}", ended.message());
      std::scoped_lock lock(mirror_mu_);
      mirror_live_ = listed = false;
    } else if (!ended.ok()) {
      spdlog::debug("the watch of the shared address book broke; watching again: {}", ended.message());
      std::this_thread::sleep_for(kRewatchPause);
    }
  }
}

EtcdIpamStore::~EtcdIpamStore() {
  stopping_ = true;
  if (watch_client_ != nullptr) watch_client_->StopWatch();
  {
    std::scoped_lock lock(mirror_mu_);
    mirror_moved_.notify_all();
  }
  if (watcher_.joinable()) watcher_.join();
}

Result<IpamSnapshot> EtcdIpamStore::Load() { return CollectLoad(); }

Result<NameRecords> EtcdIpamStore::ReadName(const std::string& pool_id, const std::string& name) {
  const uint64_t seen = unavailable_answers_;
  std::scoped_lock lock(mu_);
  SMV_RETURN_IF_ERROR(UnavailableSinceLocked(seen));
  Result<NameRecords> read = ReadNameLocked(pool_id, name);
  NoteAnswerLocked(read.status());
  return read;
}

Result<NameRecords> EtcdIpamStore::ReadNameLocked(const std::string& pool_id, const std::string& name) {
  const auto until = Clock::now() + kCallBudget;
  const std::string where = "etcd " + options_.prefix;
  // Reads one key and notes its revision (absent: this node now believes it does not exist).
  auto read = [&](const std::string& key) -> Result<std::optional<std::string>> {
    Result<etcd::RangeResult> got = client_.Get(key, Left(until));
    if (!got.ok()) return got.status();
    if (got->kvs.empty()) {
      revisions_.erase(key);
      return std::optional<std::string>();
    }
    revisions_[key] = got->kvs.front().mod_revision;
    return std::optional<std::string>(got->kvs.front().value);
  };
  NameRecords out;
  const std::string reservation_key = records::ReservationKey(pool_id, name);
  Result<std::optional<std::string>> reservation = read(options_.prefix + "reservation/" + reservation_key);
  if (!reservation.ok()) return reservation.status();
  if (!*reservation) return out;
  Result<ReservationRecord> r = records::DecodeReservation(where + "reservation/", reservation_key, **reservation);
  if (!r.ok()) return r.status();
  out.reservation = std::move(r).value();
  const std::string lease_key = records::LeaseKey(pool_id, out.reservation->address);
  Result<std::optional<std::string>> lease = read(options_.prefix + "lease/" + lease_key);
  if (!lease.ok()) return lease.status();
  if (*lease) {
    Result<LeaseRecord> l = records::DecodeLease(where + "lease/", lease_key, **lease);
    if (!l.ok()) return l.status();
    out.lease = std::move(l).value();
  }
  return out;
}

Result<std::optional<PoolRecord>> EtcdIpamStore::ReadPool(const std::string& pool_id) {
  const uint64_t seen = unavailable_answers_;
  std::scoped_lock lock(mu_);
  SMV_RETURN_IF_ERROR(UnavailableSinceLocked(seen));
  Result<std::optional<PoolRecord>> read = ReadPoolLocked(pool_id);
  NoteAnswerLocked(read.status());
  return read;
}

Result<std::optional<PoolRecord>> EtcdIpamStore::ReadPoolLocked(const std::string& pool_id) {
  // A look only: the key's revision stays what memory last saw, so no commit builds on this read.
  const std::string key = records::PoolKey(pool_id);
  Result<etcd::RangeResult> got = client_.Get(options_.prefix + "pool/" + key, kCallBudget);
  if (!got.ok()) return got.status();
  if (got->kvs.empty()) return std::optional<PoolRecord>();
  Result<PoolRecord> pool = records::DecodePool("etcd " + options_.prefix + "pool/", key, got->kvs.front().value);
  if (!pool.ok()) return pool.status();
  return std::optional<PoolRecord>(std::move(pool).value());
}

Status EtcdIpamStore::ApplyAll(std::span<const IpamBatch> batches) {
  const uint64_t seen = unavailable_answers_;
  std::scoped_lock lock(mu_);
  if (options_.read_only) return FailedPrecondition("the shared address book was opened read-only (fsck)");
  // Refused before anything is sent: this commit's outcome is known (not applied).
  SMV_RETURN_IF_ERROR(UnavailableSinceLocked(seen));
  Status applied = ApplyAllLocked(batches);
  NoteAnswerLocked(applied);
  return applied;
}

Status EtcdIpamStore::ApplyAllLocked(std::span<const IpamBatch> batches) {
  const auto until = Clock::now() + kCallBudget;
  refused_at_ = 0;
  etcd::Txn txn;
  for (auto& [key, value] : MergeWrites(options_.prefix, batches)) {
    if (!value && !revisions_.contains(key)) continue;  // never seen: nothing of ours to delete
    txn.compares.push_back(ExpectAsSeen(key, revisions_));
    if (value) {
      txn.success.push_back(etcd::PutOp{key, std::move(*value)});
    } else {
      txn.success.push_back(etcd::DeleteOp{key});
    }
  }
  if (txn.success.empty()) return OkStatus();
  const std::string commit_id = NextCommitId();
  txn.compares.push_back(ExpectAsSeen(CommitKey(), revisions_));
  txn.success.push_back(etcd::PutOp{CommitKey(), commit_id});
  if (txn.success.size() > options_.max_txn_ops) {
    return FailedPrecondition(fmt::format(
        "one commit of {} writes is more than etcd's --max-txn-ops ({}); start etcd with a larger --max-txn-ops",
        txn.success.size(), options_.max_txn_ops));
  }

  int64_t revision = 0;
  Result<etcd::TxnResult> done = client_.Commit(txn, Left(until));
  if (done.ok()) {
    if (!done->succeeded) {
      refused_at_ = done->revision;  // the reload that follows may come from the mirror
      return Aborted("the shared address book changed under this commit: another node wrote first");
    }
    revision = done->revision;
  } else {
    // The answer was lost: read back. Not applied means fenced off, so it never will apply.
    Result<std::optional<int64_t>> applied = FenceUnless(commit_id, Left(until));
    fence_needed_ = !applied.ok();
    if (!applied.ok() && applied.status().code() == Code::kUnavailable) {
      // Settled by the reload that follows any failed commit (Load fences first).
      return Unavailable(fmt::format("{}; refusing to allocate to avoid duplicate addresses", done.status().message()));
    }
    if (!applied.ok()) return applied.status();
    if (!applied->has_value()) {
      ++fenced_commits_;
      return Aborted("a commit whose answer was lost did not apply (fenced off); deciding again");
    }
    revision = **applied;  // it applied: every key it wrote has this revision
  }
  for (const etcd::Op& op : txn.success) {
    if (const auto* put = std::get_if<etcd::PutOp>(&op)) {
      revisions_[put->key] = revision;
    } else {
      revisions_.erase(std::get<etcd::DeleteOp>(op).key);
    }
  }
  return OkStatus();
}

}  // namespace smv::ipam
