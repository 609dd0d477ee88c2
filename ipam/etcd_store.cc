#include "ipam/etcd_store.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
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
// Starts the value `reservations release --node` leaves in the released node's commit key.
constexpr std::string_view kReleasedMark = "released by ";
// Migration transactions: each puts an address/ key and compares it and its reservation.
constexpr size_t kMigrationPerTxn = 60;
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

// Decodes the book's records, in key order as etcd and the mirror keep them, into a sink that
// wants pools first (lease/ < node/ < pool/ < reservation/).
// wants pools first (address/ < layout < lease/ < node/ < pool/ < reservation/). A key that does
// not decode is reported and skipped: one bad key must not stop every host of the fleet.
class BookDecoder {
 public:
  BookDecoder(const BookKeys& keys, IpamLoadSink& sink, ReservationIndex& index)
      : keys_(keys), where_("etcd " + keys.prefix), sink_(sink), index_(index) {}
  // False when the key was skipped (`why` says why).
  bool Add(std::string_view key, const std::string& value, Status& why) {
    why = Decode(key, value);
    return why.ok();
  }
  void Finish() {
    for (LeaseRecord& l : held_) sink_.OnLease(std::move(l));
    for (ReservationRecord& r : reserved_) sink_.OnReservation(std::move(r));
  }

 private:
  Status Decode(std::string_view key, const std::string& value) {
    if (key.starts_with(keys_.pools)) {
      Result<PoolRecord> r = records::DecodePool(where_ + "pool/", key.substr(keys_.pools.size()), value);
      if (!r.ok()) return r.status();
      sink_.OnPool(std::move(r).value());
    } else if (key.starts_with(keys_.leases)) {
      const std::string_view lease_key = key.substr(keys_.leases.size());
      Result<LeaseRecord> r = records::DecodeLease(where_ + "lease/", lease_key, value);
      if (!r.ok()) {
        // Its address stays taken: held by a record no node can read, until fsck's user fixes it.
        if (auto at = records::ParseLeaseKey(where_ + "lease/", lease_key); at.ok()) {
          held_.push_back(LeaseRecord{
              .pool_id = at->first, .address = at->second, .lease = {.node = "(an undecodable record)"}, .since = 0});
        }
        return r.status();
      }
      held_.push_back(std::move(r).value());
    } else if (key.starts_with(keys_.reservations)) {
      Result<ReservationRecord> r =
          records::DecodeReservation(where_ + "reservation/", key.substr(keys_.reservations.size()), value);
      if (!r.ok()) return r.status();
      index_.reserved_at[std::string(key)] = keys_.ReservedAddress(r->pool_id, r->address);
      reserved_.push_back(std::move(r).value());
    } else if (key.starts_with(keys_.reserved_addresses)) {
      Result<std::string> name =
          records::DecodeReservedAddress(where_ + "address/", key.substr(keys_.reserved_addresses.size()), value);
      if (!name.ok()) return name.status();
      index_.name_at[std::string(key)] = std::move(name).value();
    }  // node/ keys and the layout are not address records
    return OkStatus();
  }

  const BookKeys& keys_;
  const std::string where_;
  IpamLoadSink& sink_;
  ReservationIndex& index_;
  std::vector<LeaseRecord> held_;
  std::vector<ReservationRecord> reserved_;
};

// What the record at `key` is to a user: "the reservation of name \"web\" in pool \"...\"".
std::string RecordAt(const BookKeys& keys, std::string_view key) {
  const std::pair<std::string_view, std::string_view> families[] = {{keys.reservations, "the reservation of name"},
                                                                    {keys.leases, "the lease of address"},
                                                                    {keys.reserved_addresses, "the holder of address"},
                                                                    {keys.pools, "the pool record"}};
  for (const auto& [family, what] : families) {
    if (!key.starts_with(family)) continue;
    const std::string_view rest = key.substr(family.size());
    const size_t nul = rest.find('\0');
    if (nul == std::string_view::npos) return fmt::format("{} \"{}\"", what, PrintableKey(rest));
    return fmt::format("{} \"{}\" in pool \"{}\"", what, PrintableKey(rest.substr(nul + 1)),
                       PrintableKey(rest.substr(0, nul)));
  }
  return "a record";
}

milliseconds Left(Clock::time_point until) {
  return std::max(kMinResolveTime, std::chrono::duration_cast<milliseconds>(until - Clock::now()));
}

}  // namespace

std::string PrintableKey(std::string_view key) {
  std::string out;
  for (const char c : key) {
    if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\' && c != '\'') {
      out.push_back(c);
    } else {
      out += fmt::format("\\x{:02x}", static_cast<unsigned char>(c));
    }
  }
  return out;
}

std::string EtcdctlCommand(std::string_view request, std::string_view key) {
  return fmt::format("printf '\\n{} \"%s\"\\n\\n\\n' '{}' | etcdctl txn", request, PrintableKey(key));
}

std::string BookKeys::Pool(const std::string& pool_id) const { return pools + records::PoolKey(pool_id); }
std::string BookKeys::Lease(const std::string& pool_id, const IpAddress& address) const {
  return leases + records::LeaseKey(pool_id, address);
}
std::string BookKeys::Reservation(const std::string& pool_id, const std::string& name) const {
  return reservations + records::ReservationKey(pool_id, name);
}
std::string BookKeys::ReservedAddress(const std::string& pool_id, const IpAddress& address) const {
  return reserved_addresses + records::LeaseKey(pool_id, address);
}

EtcdIpamStore::EtcdIpamStore(etcd::KvClient& client, EtcdStoreOptions options)
    : client_(client), options_(std::move(options)), keys_(options_.prefix) {
  std::random_device random;
  instance_ = fmt::format("{}-{:08x}{:08x}", getpid(), random(), random());
}

Result<std::unique_ptr<EtcdIpamStore>> EtcdIpamStore::Open(etcd::KvClient& client, EtcdStoreOptions options) {
  if (options.node.empty() || options.node.find('/') != std::string::npos) {
    return InvalidArgument(fmt::format("--node-name \"{}\": want a non-empty name without '/'", options.node));
  }
  return std::unique_ptr<EtcdIpamStore>(new EtcdIpamStore(client, std::move(options)));
}

std::string EtcdIpamStore::CommitKey() const { return keys_.Commit(options_.node); }

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
    if (!seen->kvs.empty() && seen->kvs.front().value.starts_with(kReleasedMark)) {
      spdlog::error(
          "this node ({}) was {}: every address it held was freed in the shared book and may be another host's "
          "now; its containers' addresses are taken again only where still free",
          options_.node, seen->kvs.front().value);
    }
    // If a transaction still in flight applies first, the fence fails and the next read sees it.
    etcd::Txn txn{.compares = {Unchanged(key, seen_revision)}, .success = {etcd::PutOp{key, NextCommitId()}}};
    Result<etcd::TxnResult> fenced = client_.Commit(txn, Left(until));
    if (fenced.ok() && fenced->succeeded) {
      revisions_[key] = fenced->revision;
      return std::optional<int64_t>();
    }
    if (!fenced.ok() && fenced.status().code() != Code::kUnavailable) return fenced.status();  // e.g. NOSPACE
    if (!fenced.ok()) last = fenced.status();  // maybe applied: the next read tells
  }
  if (Clock::now() >= until) return last;
  return Aborted(fmt::format("the commit key {} keeps changing: is another plugin running with --node-name {}?", key,
                             options_.node));
}

Status EtcdIpamStore::LoadInto(IpamLoadSink& sink) {
  const uint64_t seen = unavailable_.seen();
  std::unique_lock lock(mu_, std::defer_lock);
  SMV_RETURN_IF_ERROR(unavailable_.Acquire(lock, seen));
  Status loaded = LoadIntoLocked(sink);
  unavailable_.Note(loaded);
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
  Result<etcd::RangeResult> all = ReadBookLocked(until);
  if (!all.ok()) return all.status();
  std::vector<std::pair<std::string, const std::string*>> kvs;
  kvs.reserve(all->kvs.size());
  revisions_.clear();
  for (const etcd::KeyValue& kv : all->kvs) {
    revisions_[kv.key] = kv.mod_revision;
    kvs.emplace_back(kv.key, &kv.value);
  }
  DecodeBookLocked(sink, kvs);
  return OkStatus();
}

void EtcdIpamStore::DecodeBookLocked(IpamLoadSink& sink,
                                     const std::vector<std::pair<std::string, const std::string*>>& kvs) {
  index_ = {};
  std::map<std::string, std::string> undecodable;
  BookDecoder decoder(keys_, sink, index_);
  for (const auto& [key, value] : kvs) {
    Status why = OkStatus();
    if (decoder.Add(key, *value, why)) continue;
    // Never seen, as far as commits go: a write to it compares "absent" and is refused, so this
    // node never overwrites a record it could not read (CheckDecodable refuses it before).
    revisions_.erase(key);
    undecodable[key] = why.message();
    spdlog::error("skipped a record of the shared address book that does not decode (fsck lists it): {}",
                  why.message());
  }
  decoder.Finish();
  std::scoped_lock lock(undecodable_mu_);
  undecodable_ = std::move(undecodable);
}

Result<etcd::RangeResult> EtcdIpamStore::ReadBookLocked(Clock::time_point until) {
  for (int attempt = 0;; ++attempt) {
    Result<etcd::RangeResult> all = client_.GetPrefix(options_.prefix, 0, 0, Left(until));
    if (!all.ok() || options_.read_only) return all;
    const auto layout = std::find_if(all->kvs.begin(), all->kvs.end(),
                                     [&](const etcd::KeyValue& kv) { return kv.key == keys_.layout; });
    if (layout != all->kvs.end() && layout->value == kBookLayout) return all;
    // Absent or "1" is migrated; anything else is a later layout (or not ours): never rewritten.
    if (layout != all->kvs.end() && layout->value != "1") {
      return FailedPrecondition(
          fmt::format("the shared address book under {} has layout \"{}\"; this version "
                      "reads layout {} and migrates 1: upgrade static-macvlan on this host",
                      options_.prefix, layout->value, kBookLayout));
    }
    Status migrated = MigrateLocked(*all, until);
    if (!migrated.ok() && (migrated.code() != Code::kAborted || attempt == kFenceAttempts)) return migrated;
  }
}

Status EtcdIpamStore::MigrateLocked(const etcd::RangeResult& book, Clock::time_point until) {
  std::unordered_map<std::string, int64_t> seen;
  for (const etcd::KeyValue& kv : book.kvs) seen[kv.key] = kv.mod_revision;
  std::vector<etcd::Txn> txns(1);
  size_t written = 0;
  for (const etcd::KeyValue& kv : book.kvs) {
    if (!kv.key.starts_with(keys_.reservations)) continue;
    Result<ReservationRecord> r = records::DecodeReservation(
        "etcd " + keys_.reservations, std::string_view(kv.key).substr(keys_.reservations.size()), kv.value);
    if (!r.ok()) continue;  // skipped by every load: fsck lists it
    const std::string address_key = keys_.ReservedAddress(r->pool_id, r->address);
    if (seen.contains(address_key)) continue;  // indexed, or reserved twice already (fsck lists it)
    seen[address_key] = 0;
    if (txns.back().success.size() == kMigrationPerTxn) txns.emplace_back();
    txns.back().compares.push_back(Unchanged(kv.key, kv.mod_revision));
    txns.back().compares.push_back(Unchanged(address_key, 0));
    txns.back().success.push_back(etcd::PutOp{address_key, records::EncodeReservedAddress(r->name)});
    ++written;
  }
  const auto layout = seen.find(keys_.layout);
  txns.back().compares.push_back(Unchanged(keys_.layout, layout == seen.end() ? 0 : layout->second));
  txns.back().success.push_back(etcd::PutOp{keys_.layout, std::string(kBookLayout)});
  for (const etcd::Txn& txn : txns) {
    Result<etcd::TxnResult> done = client_.Commit(txn, Left(until));
    if (!done.ok()) return done.status();  // the next load reads what applied
    if (!done->succeeded) return Aborted("the shared address book changed during its migration");
  }
  spdlog::info("migrated the shared address book under {} to layout {}: {} reservation(s) findable by address",
               options_.prefix, kBookLayout, written);
  return OkStatus();
}

bool EtcdIpamStore::LoadFromMirror(IpamLoadSink& sink, int64_t at_least, Status& decoded) {
  std::unique_lock lock(mirror_mu_);
  if (watch_client_ == nullptr) return false;
  const bool reached = mirror_moved_.wait_for(
      lock, kMirrorWait, [&] { return stopping_ || (mirror_live_ && mirror_revision_ >= at_least); });
  if (!reached || stopping_) return false;
  // Released by another host (its mark in this node's commit key): the full load fences, and says so.
  if (auto own = mirror_.find(CommitKey()); own != mirror_.end() && own->second.value.starts_with(kReleasedMark)) {
    return false;
  }
  std::vector<std::pair<std::string, const std::string*>> kvs;
  kvs.reserve(mirror_.size());
  revisions_.clear();
  for (const auto& [key, entry] : mirror_) {
    revisions_[key] = entry.mod_revision;
    kvs.emplace_back(key, &entry.value);
  }
  DecodeBookLocked(sink, kvs);
  decoded = OkStatus();
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
  const uint64_t seen = unavailable_.seen();
  std::unique_lock lock(mu_, std::defer_lock);
  SMV_RETURN_IF_ERROR(unavailable_.Acquire(lock, seen));
  Result<NameRecords> read = ReadNameLocked(pool_id, name);
  unavailable_.Note(read.status());
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
  // Who reserves that address, too: a lease this node then decides on compares it as read.
  const std::string address_key = keys_.ReservedAddress(pool_id, out.reservation->address);
  Result<std::optional<std::string>> holder = read(address_key);
  if (!holder.ok()) return holder.status();
  index_.reserved_at[keys_.Reservation(pool_id, name)] = address_key;
  if (*holder) {
    Result<std::string> held_by = records::DecodeReservedAddress(where + "address/", address_key, **holder);
    if (held_by.ok()) index_.name_at[address_key] = std::move(held_by).value();
  }
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
  const uint64_t seen = unavailable_.seen();
  std::unique_lock lock(mu_, std::defer_lock);
  SMV_RETURN_IF_ERROR(unavailable_.Acquire(lock, seen));
  Result<std::optional<PoolRecord>> read = ReadPoolLocked(pool_id);
  unavailable_.Note(read.status());
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
  if (options_.read_only) return FailedPrecondition("the shared address book was opened read-only (fsck)");
  const uint64_t seen = unavailable_.seen();
  std::unique_lock lock(mu_, std::defer_lock);
  // Refused before anything is sent: this commit's outcome is known (not applied).
  SMV_RETURN_IF_ERROR(unavailable_.Acquire(lock, seen));
  Status applied = ApplyAllLocked(batches);
  unavailable_.Note(applied);
  return applied;
}

std::map<std::string, std::optional<std::string>> EtcdIpamStore::PlanWrites(std::span<const IpamBatch> batches,
                                                                            ReservationIndex& index) const {
  std::map<std::string, std::optional<std::string>> writes;
  // Drops the address/ key of the reservation at `reservation_key`, while it still names `name`.
  auto unreserve = [&](const std::string& reservation_key, const std::string& name) {
    auto at = index.reserved_at.find(reservation_key);
    if (at == index.reserved_at.end()) return;
    if (auto holder = index.name_at.find(at->second); holder != index.name_at.end() && holder->second == name) {
      writes[at->second] = std::nullopt;
      index.name_at.erase(holder);
    }
    index.reserved_at.erase(at);
  };
  for (const IpamBatch& b : batches) {
    for (const PoolRecord& p : b.put_pools) writes[keys_.Pool(p.config.id)] = records::EncodePool(p);
    for (const std::string& id : b.delete_pools) writes[keys_.Pool(id)] = std::nullopt;
    for (const LeaseRecord& l : b.put_leases) writes[keys_.Lease(l.pool_id, l.address)] = records::EncodeLease(l);
    for (const auto& [pool_id, address] : b.delete_leases) writes[keys_.Lease(pool_id, address)] = std::nullopt;
    for (const ReservationRecord& r : b.put_reservations) {
      const std::string key = keys_.Reservation(r.pool_id, r.name);
      const std::string address_key = keys_.ReservedAddress(r.pool_id, r.address);
      if (auto at = index.reserved_at.find(key); at == index.reserved_at.end() || at->second != address_key) {
        unreserve(key, r.name);
      }
      writes[key] = records::EncodeReservation(r);
      writes[address_key] = records::EncodeReservedAddress(r.name);
      index.reserved_at[key] = address_key;
      index.name_at[address_key] = r.name;
    }
    for (const auto& [pool_id, name] : b.delete_reservations) {
      const std::string key = keys_.Reservation(pool_id, name);
      unreserve(key, name);
      writes[key] = std::nullopt;
    }
  }
  return writes;
}

std::vector<std::string> EtcdIpamStore::ReadKeys(std::span<const IpamBatch> batches) const {
  std::vector<std::string> keys;
  for (const IpamBatch& b : batches) {
    for (const std::string& id : b.reads.pools) keys.push_back(keys_.Pool(id));
    for (const auto& [pool_id, address] : b.reads.leases) keys.push_back(keys_.Lease(pool_id, address));
    for (const auto& [pool_id, name] : b.reads.reservations) keys.push_back(keys_.Reservation(pool_id, name));
    for (const auto& [pool_id, address] : b.reads.reserved_addresses) {
      keys.push_back(keys_.ReservedAddress(pool_id, address));
    }
  }
  std::sort(keys.begin(), keys.end());
  keys.erase(std::unique(keys.begin(), keys.end()), keys.end());
  return keys;
}

std::vector<std::string> EtcdIpamStore::PutOrReadKeys(const IpamBatch& batch) const {
  std::vector<std::string> keys = ReadKeys({&batch, 1});
  for (const PoolRecord& p : batch.put_pools) keys.push_back(keys_.Pool(p.config.id));
  for (const LeaseRecord& l : batch.put_leases) keys.push_back(keys_.Lease(l.pool_id, l.address));
  for (const ReservationRecord& r : batch.put_reservations) {
    keys.push_back(keys_.Reservation(r.pool_id, r.name));
    keys.push_back(keys_.ReservedAddress(r.pool_id, r.address));
  }
  return keys;
}

Status EtcdIpamStore::CheckDecodable(const IpamBatch& batch) const {
  std::scoped_lock lock(undecodable_mu_);
  if (undecodable_.empty()) return OkStatus();
  for (const std::string& key : PutOrReadKeys(batch)) {
    auto bad = undecodable_.find(key);
    if (bad == undecodable_.end()) continue;
    return FailedPrecondition(fmt::format(
        "{} cannot be written: its record {} in the shared address book does not decode ({}), and no node "
        "overwrites a record it could not read; nothing was written. `static-macvlan fsck` lists it. Look at it "
        "with: {}; then restore it, or delete it with: {}",
        RecordAt(keys_, key), PrintableKey(key), bad->second, EtcdctlCommand("get", key), EtcdctlCommand("del", key)));
  }
  return OkStatus();
}

Status EtcdIpamStore::ApplyAllLocked(std::span<const IpamBatch> batches) {
  const auto until = Clock::now() + kCallBudget;
  refused_at_ = 0;
  ReservationIndex index = index_;  // becomes index_ once the commit holds
  const std::map<std::string, std::optional<std::string>> writes = PlanWrites(batches, index);
  etcd::Txn txn;
  for (const auto& [key, value] : writes) {
    if (!value && !revisions_.contains(key)) continue;  // never seen: nothing of ours to delete
    txn.compares.push_back(ExpectAsSeen(key, revisions_));
    if (value) {
      txn.success.push_back(etcd::PutOp{key, *value});
    } else {
      txn.success.push_back(etcd::DeleteOp{key});
    }
  }
  if (txn.success.empty()) return OkStatus();
  for (const std::string& key : ReadKeys(batches)) {
    if (!writes.contains(key)) txn.compares.push_back(ExpectAsSeen(key, revisions_));
  }
  const std::string commit_id = NextCommitId();
  txn.compares.push_back(ExpectAsSeen(CommitKey(), revisions_));
  txn.success.push_back(etcd::PutOp{CommitKey(), commit_id});
  if (txn.success.size() > options_.max_txn_ops || txn.compares.size() > options_.max_txn_ops) {
    return FailedPrecondition(fmt::format(
        "one commit of {} writes and {} compares is more than etcd's --max-txn-ops ({}); start etcd with a larger "
        "--max-txn-ops",
        txn.success.size(), txn.compares.size(), options_.max_txn_ops));
  }

  int64_t revision = 0;
  Result<etcd::TxnResult> done = client_.Commit(txn, Left(until));
  if (done.ok()) {
    if (!done->succeeded) {
      refused_at_ = done->revision;  // the reload that follows may come from the mirror
      return Aborted("the shared address book changed under this commit: another node wrote first");
    }
    revision = done->revision;
  } else if (done.status().code() == Code::kResourceExhausted) {
    return done.status();  // etcd out of space refused it: not applied, and a fence would be refused too
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
  index_ = std::move(index);
  return OkStatus();
}

int64_t EtcdIpamStore::LeaseRevision(const std::string& pool_id, const IpAddress& address) {
  std::scoped_lock lock(mu_);
  auto it = revisions_.find(keys_.Lease(pool_id, address));
  return it == revisions_.end() ? 0 : it->second;
}

Status EtcdIpamStore::FenceNode(const std::string& node) {
  std::scoped_lock lock(mu_);
  if (options_.read_only) return FailedPrecondition("the shared address book was opened read-only (fsck)");
  const std::string key = keys_.Commit(node);
  const std::string mark = fmt::format(
      "{}`reservations release --node {}` on node {} at unix time {}", kReleasedMark, node, options_.node,
      std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count());
  // Unconditional: whatever that node sent last, it must not apply after this.
  Result<etcd::TxnResult> done = client_.Commit({.compares = {}, .success = {etcd::PutOp{key, mark}}}, kCallBudget);
  unavailable_.Note(done.status());
  return done.status();
}

Result<bool> EtcdIpamStore::CommitKeyMoved() {
  const uint64_t seen = unavailable_.seen();
  std::unique_lock lock(mu_, std::defer_lock);
  SMV_RETURN_IF_ERROR(unavailable_.Acquire(lock, seen));
  Result<etcd::RangeResult> got = client_.Get(CommitKey(), kCallBudget);
  unavailable_.Note(got.status());
  if (!got.ok()) return got.status();
  auto known = revisions_.find(CommitKey());
  const int64_t now = got->kvs.empty() ? 0 : got->kvs.front().mod_revision;
  return now != (known == revisions_.end() ? 0 : known->second);
}

std::vector<UndecodableKey> EtcdIpamStore::undecodable_keys() const {
  std::scoped_lock lock(undecodable_mu_);
  std::vector<UndecodableKey> out;
  for (const auto& [key, why] : undecodable_) out.push_back({key, why});
  return out;
}

}  // namespace smv::ipam
