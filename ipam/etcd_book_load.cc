// Loading the shared book: a full read (after the fence), its decoding, the migration of a
// layout-1 book, and the mirror a watch keeps for reloads after a refused commit.
#include "ipam/etcd_store.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "ipam/records.h"
#include "ipam/stop_wait.h"

namespace smv::ipam {

using std::chrono::milliseconds;
namespace {

// Decodes the book's records, in key order as etcd and the mirror keep them, into a sink that
// wants pools first (address/ < layout < lease/ < node/ < pool/ < reservation/). A key that does
// not decode is reported and skipped: one bad key must not stop every host of the fleet.
class BookDecoder {
 public:
  BookDecoder(const BookKeys& keys, IpamLoadSink& sink, ReservationIndex& index)
      : keys_(keys), sink_(sink), index_(index) {}
  // False when the key was skipped (`why` says why).
  bool Add(std::string_view key, const std::string& value, Status& why) {
    why = Decode(key, value);
    return why.ok();
  }
  // address/ key -> the name whose reservation of that address does not decode (filled by Finish).
  std::map<std::string, std::string> reserved_unreadably_;
  void Finish() {
    KeepUnreadableReservationsTaken();
    for (LeaseRecord& l : held_) sink_.OnLease(std::move(l));
    for (ReservationRecord& r : reserved_) sink_.OnReservation(std::move(r));
  }

 private:
  Status Decode(std::string_view key, const std::string& value) {
    if (key.starts_with(keys_.pools)) {
      Result<PoolRecord> r = records::DecodePool(BookKeys::Where(keys_.pools), key.substr(keys_.pools.size()), value);
      if (!r.ok()) return r.status();
      sink_.OnPool(std::move(r).value());
    } else if (key.starts_with(keys_.leases)) {
      const std::string_view lease_key = key.substr(keys_.leases.size());
      Result<LeaseRecord> r = records::DecodeLease(BookKeys::Where(keys_.leases), lease_key, value);
      if (!r.ok()) {
        // Its address stays taken: held by a record no node can read, until fsck's user fixes it.
        if (auto at = records::ParseLeaseKey(BookKeys::Where(keys_.leases), lease_key); at.ok()) {
          held_.push_back(LeaseRecord{.pool_id = at->first,
                                      .address = at->second,
                                      .lease = {.node = std::string(kUndecodableHolder)},
                                      .since = 0});
        }
        return r.status();
      }
      held_.push_back(std::move(r).value());
    } else if (key.starts_with(keys_.reservations)) {
      Result<ReservationRecord> r =
          records::DecodeReservation(BookKeys::Where(keys_.reservations), key.substr(keys_.reservations.size()), value);
      if (!r.ok()) {
        unreadable_reservations_.emplace(key);
        return r.status();
      }
      index_.reserved_at[std::string(key)] = keys_.ReservedAddress(r->pool_id, r->address);
      reserved_.push_back(std::move(r).value());
    } else if (key.starts_with(keys_.reserved_addresses)) {
      Result<std::string> name = records::DecodeReservedAddress(BookKeys::Where(keys_.reserved_addresses),
                                                                key.substr(keys_.reserved_addresses.size()), value);
      if (!name.ok()) return name.status();
      index_.name_at[std::string(key)] = std::move(name).value();
    }  // node/ keys and the layout are not address records
    return OkStatus();
  }

  // A reservation no node can read still has its address/ key, which names the address: that
  // address stays taken (by kUndecodableHolder), so no node gives it to another name before the
  // record is fixed. (A lease on it, if any, keeps it taken already.)
  void KeepUnreadableReservationsTaken() {
    if (unreadable_reservations_.empty()) return;
    for (const auto& [address_key, name] : index_.name_at) {
      auto at = records::ParseLeaseKey(BookKeys::Where(keys_.reserved_addresses),
                                       std::string_view(address_key).substr(keys_.reserved_addresses.size()));
      if (!at.ok() || !unreadable_reservations_.contains(keys_.Reservation(at->first, name))) continue;
      reserved_unreadably_[address_key] = name;
      const bool leased = std::any_of(held_.begin(), held_.end(), [&](const LeaseRecord& l) {
        return l.pool_id == at->first && l.address == at->second;
      });
      if (leased) continue;
      held_.push_back(LeaseRecord{
          .pool_id = at->first, .address = at->second, .lease = {.node = std::string(kUndecodableHolder)}, .since = 0});
    }
  }

  const BookKeys& keys_;
  IpamLoadSink& sink_;
  ReservationIndex& index_;
  std::vector<LeaseRecord> held_;
  std::vector<ReservationRecord> reserved_;
  std::set<std::string> unreadable_reservations_;  // reservation/ keys that did not decode
};

}  // namespace

Status EtcdIpamStore::LoadInto(IpamLoadSink& sink) {
  return Guarded([&] { return LoadIntoLocked(sink); });
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
  std::map<std::string, UndecodableKey> undecodable;
  const std::string cluster = EtcdctlCluster(client_.options());
  BookDecoder decoder(keys_, sink, index_);
  for (const auto& [key, value] : kvs) {
    Status why = OkStatus();
    if (decoder.Add(key, *value, why)) continue;
    auto seen = revisions_.find(key);
    undecodable[key] = {.key = key,
                        .why = why.message(),
                        .mod_revision = seen == revisions_.end() ? 0 : seen->second,
                        .cluster = cluster};
    // Never seen, as far as commits go: a write to it compares "absent" and is refused, so this
    // node never overwrites a record it could not read (CheckDecodable refuses it before).
    if (seen != revisions_.end()) revisions_.erase(seen);
    spdlog::error("skipped a record of the shared address book that does not decode (fsck lists it): {}",
                  PrintableWhy(why.message()));
  }
  decoder.Finish();
  std::scoped_lock lock(undecodable_mu_);
  undecodable_ = std::move(undecodable);
  reserved_unreadably_ = std::move(decoder.reserved_unreadably_);
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
        BookKeys::Where(keys_.reservations), std::string_view(kv.key).substr(keys_.reservations.size()), kv.value);
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
  const std::stop_token stop = watcher_.get_stop_token();
  const bool reached = mirror_moved_.wait_for(
      lock, kMirrorWait, [&] { return stop.stop_requested() || (mirror_live_ && mirror_revision_ >= at_least); });
  if (!reached || stop.stop_requested()) return false;
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
  watcher_ = std::jthread([this](std::stop_token stop) {
    // A stop ends the watch in progress at once: it may be waiting for the book's next change.
    const std::stop_callback end_watch(stop, [this] { watch_client_->StopWatch(); });
    FollowBook(stop);
  });
}

void EtcdIpamStore::PauseWatch(bool paused) {
  {
    std::scoped_lock lock(mirror_mu_);
    watch_paused_ = paused;
  }
  if (paused && watch_client_ != nullptr) watch_client_->InterruptWatch();
}

bool EtcdIpamStore::ListIntoMirror(etcd::KvClient& client) {
  Result<etcd::RangeResult> all = client.GetPrefix(options_.prefix);
  if (!all.ok()) {
    spdlog::debug("listing the shared address book for its mirror failed: {}", all.status().message());
    return false;
  }
  std::scoped_lock lock(mirror_mu_);
  mirror_.clear();
  for (etcd::KeyValue& kv : all->kvs) mirror_[kv.key] = {std::move(kv.value), kv.mod_revision};
  mirror_revision_ = all->revision;
  mirror_live_ = true;
  ++mirror_lists_;
  mirror_moved_.notify_all();
  return true;
}

void EtcdIpamStore::FollowBook(std::stop_token stop) {
  etcd::KvClient& client = *watch_client_;
  bool listed = false;
  auto paused = [&] {
    std::scoped_lock lock(mirror_mu_);
    return watch_paused_;
  };
  while (!stop.stop_requested()) {
    if (paused()) {
      StopRequestedWithin(stop, milliseconds(20));
      continue;
    }
    if (!listed && !(listed = ListIntoMirror(client))) {
      StopRequestedWithin(stop, kRelistPause);
      continue;
    }
    int64_t from = 0;
    {
      std::scoped_lock lock(mirror_mu_);
      from = mirror_revision_ + 1;
      watching_ = true;
    }
    Status ended = client.Watch(options_.prefix, from, [&](std::vector<etcd::WatchEvent> batch) {
      std::scoped_lock lock(mirror_mu_);
      if (stop.stop_requested() || watch_paused_) return false;
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
    {
      std::scoped_lock lock(mirror_mu_);
      watching_ = false;
    }
    if (stop.stop_requested()) break;
    if (ended.code() == Code::kAborted) {  // compacted past what the mirror has: list again
      spdlog::info("the mirror of the shared address book lists it again: {}", ended.message());
      std::scoped_lock lock(mirror_mu_);
      mirror_live_ = listed = false;
    } else if (!ended.ok()) {
      spdlog::debug("the watch of the shared address book broke; watching again: {}", ended.message());
      StopRequestedWithin(stop, kRewatchPause);
    }
  }
}

}  // namespace smv::ipam
