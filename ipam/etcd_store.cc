#include "ipam/etcd_store.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <utility>

#include "common/shell_word.h"
#include "ipam/records.h"

namespace smv::ipam {

using std::chrono::milliseconds;

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

std::string PrintableWhy(std::string_view why) {
  std::string out;
  for (const char c : why.substr(0, kWhyShown)) {
    if (c >= 0x20 && c < 0x7f) {
      out.push_back(c);
    } else {
      out += fmt::format("\\x{:02x}", static_cast<unsigned char>(c));
    }
  }
  if (why.size() > kWhyShown) out += fmt::format("... ({} more bytes)", why.size() - kWhyShown);
  return out;
}

namespace {}  // namespace

std::string EtcdctlCluster(const etcd::ClientOptions& options) {
  std::vector<std::string> urls;
  for (const etcd::Endpoint& e : options.endpoints) {
    const bool bare_ipv6 = e.host.find(':') != std::string::npos && !e.host.starts_with('[');
    urls.push_back(fmt::format("{}://{}{}{}:{}", options.tls.enabled() ? "https" : "http", bare_ipv6 ? "[" : "", e.host,
                               bare_ipv6 ? "]" : "", e.port));
  }
  std::string flags = "--endpoints=" + ShellWord(fmt::format("{}", fmt::join(urls, ",")));
  if (!options.tls.ca_file.empty()) flags += " --cacert=" + ShellWord(options.tls.ca_file);
  if (!options.tls.cert_file.empty()) flags += " --cert=" + ShellWord(options.tls.cert_file);
  if (!options.tls.key_file.empty()) flags += " --key=" + ShellWord(options.tls.key_file);
  // The password stays out of logs and terminals: the user fills it in.
  if (!options.user.empty()) flags += " --user=" + ShellWord(options.user) + " --password=...";
  return flags;
}

std::string EtcdctlGetCommand(const UndecodableKey& bad) {
  return fmt::format("printf '\\nget \"%s\"\\n\\n\\n' '{}' | etcdctl {} txn", PrintableKey(bad.key), bad.cluster);
}

std::string EtcdctlDeleteCommand(const UndecodableKey& bad) {
  const std::string key = PrintableKey(bad.key);
  return fmt::format("printf 'mod(\"%s\") = \"{}\"\\n\\ndel \"%s\"\\n\\n\\n' '{}' '{}' | etcdctl {} txn",
                     bad.mod_revision, key, key, bad.cluster);
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

etcd::Compare EtcdIpamStore::Unchanged(const std::string& key, int64_t revision) {
  if (revision == 0) return {.key = key, .target = etcd::Compare::Target::kCreateRevision, .revision = 0};
  return {.key = key, .target = etcd::Compare::Target::kModRevision, .revision = revision};
}

etcd::Compare EtcdIpamStore::ExpectAsSeen(const std::string& key,
                                          const std::unordered_map<std::string, int64_t>& revisions) {
  auto known = revisions.find(key);
  return Unchanged(key, known == revisions.end() ? 0 : known->second);
}

// What the record at `key` is to a user: "the reservation of name \"web\" in pool \"...\"".
std::string EtcdIpamStore::RecordAt(const BookKeys& keys, std::string_view key) {
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
  Status last = Unavailable(fmt::format("etcd: no answer for {} within {} ms", key, budget.count()));
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

EtcdIpamStore::~EtcdIpamStore() {
  watcher_.request_stop();  // ends its watch too (StartWatch)
  {
    std::scoped_lock lock(mirror_mu_);
    mirror_moved_.notify_all();
  }
  watcher_ = {};  // joins
}

Result<IpamSnapshot> EtcdIpamStore::Load() { return CollectLoad(); }

Result<NameRecords> EtcdIpamStore::ReadName(const std::string& pool_id, const std::string& name) {
  return Guarded([&] { return ReadNameLocked(pool_id, name); });
}

Result<NameRecords> EtcdIpamStore::ReadNameLocked(const std::string& pool_id, const std::string& name) {
  const auto until = Clock::now() + kCallBudget;
  NameRecords out;
  // Reads one key and keeps its revision in `out` (0: absent) for AdoptRead.
  auto read = [&](const std::string& key) -> Result<std::optional<std::string>> {
    Result<etcd::RangeResult> got = client_.Get(key, Left(until));
    if (!got.ok()) return got.status();
    out.revisions.emplace_back(key, got->kvs.empty() ? 0 : got->kvs.front().mod_revision);
    if (got->kvs.empty()) return std::optional<std::string>();
    return std::optional<std::string>(got->kvs.front().value);
  };
  const std::string reservation_key = records::ReservationKey(pool_id, name);
  Result<std::optional<std::string>> reservation = read(keys_.reservations + reservation_key);
  if (!reservation.ok()) return reservation.status();
  if (!*reservation) return out;
  Result<ReservationRecord> r =
      records::DecodeReservation(BookKeys::Where(keys_.reservations), reservation_key, **reservation);
  if (!r.ok()) return r.status();
  out.reservation = std::move(r).value();
  // Who reserves that address, too: a lease this node then decides on compares it as read.
  const std::string address_key = keys_.ReservedAddress(pool_id, out.reservation->address);
  Result<std::optional<std::string>> holder = read(address_key);
  if (!holder.ok()) return holder.status();
  out.reserved_at.emplace(keys_.Reservation(pool_id, name), address_key);
  if (*holder) {
    Result<std::string> held_by =
        records::DecodeReservedAddress(BookKeys::Where(keys_.reserved_addresses), address_key, **holder);
    if (held_by.ok()) out.holder = std::move(held_by).value();
  }
  const std::string lease_key = records::LeaseKey(pool_id, out.reservation->address);
  Result<std::optional<std::string>> lease = read(keys_.leases + lease_key);
  if (!lease.ok()) return lease.status();
  if (*lease) {
    Result<LeaseRecord> l = records::DecodeLease(BookKeys::Where(keys_.leases), lease_key, **lease);
    if (!l.ok()) return l.status();
    out.lease = std::move(l).value();
  }
  return out;
}

void EtcdIpamStore::AdoptRead(const NameRecords& read) {
  std::scoped_lock lock(mu_);
  for (const auto& [key, revision] : read.revisions) {
    if (revision == 0) {
      revisions_.erase(key);
    } else {
      revisions_[key] = revision;
    }
  }
  if (!read.reserved_at) return;
  index_.reserved_at[read.reserved_at->first] = read.reserved_at->second;
  if (read.holder) index_.name_at[read.reserved_at->second] = *read.holder;
}

std::optional<bool> EtcdIpamStore::AnyInMirror(const std::set<std::string>& wanted) {
  std::scoped_lock lock(mirror_mu_);
  if (!mirror_live_ || !watching_ || watch_paused_ || mirror_revision_ < last_commit_revision_) return std::nullopt;
  ++mirror_lookups_;
  return std::any_of(wanted.begin(), wanted.end(), [&](const std::string& key) { return mirror_.contains(key); });
}

Result<bool> EtcdIpamStore::AnyReserved(const std::string& pool_id, const std::vector<std::string>& names) {
  if (names.empty()) return false;
  std::set<std::string> wanted;
  for (const std::string& name : names) wanted.insert(keys_.Reservation(pool_id, name));
  // While the watch follows the book its mirror answers, without a round of etcd's quorum in the
  // chain of a node's starts (dockerd asks for one network's addresses one at a time). Only a
  // mirror that has this node's last commit answers; it may still trail other nodes' commits by
  // the watch's delivery (or, with its member cut off while this node commits nothing, until the
  // watch's member check moves it on): a reservation written then is missed, as the guess misses
  // a task it cannot tell apart, and that task drifts. The answer only decides whether the guess
  // inspects its candidates; every lease that follows is compared by its commit as before.
  if (std::optional<bool> mirrored = AnyInMirror(wanted)) return *mirrored;
  // One read for all when the keys' common start (a service's slots: "web.") holds few keys: a
  // busy host asks this for every task it starts, and each read is a round of etcd's quorum.
  Result<std::optional<bool>> scanned = Guarded([&] { return ScanReservedLocked(wanted); });
  if (!scanned.ok()) return scanned.status();
  if (scanned->has_value()) return **scanned;
  // Name by name, each read its own hold of the store: the node's commits go on in between.
  for (const std::string& key : wanted) {
    Result<bool> found = Guarded([&]() -> Result<bool> {
      Result<etcd::RangeResult> got = client_.Get(key, kCallBudget);
      if (!got.ok()) return got.status();
      return !got->kvs.empty();
    });
    if (!found.ok() || *found) return found;
  }
  return false;
}

Result<std::optional<bool>> EtcdIpamStore::ScanReservedLocked(const std::set<std::string>& wanted) {
  const std::string& first = *wanted.begin();
  const std::string& last = *wanted.rbegin();
  const std::string common(first.begin(), std::mismatch(first.begin(), first.end(), last.begin(), last.end()).first);
  Result<etcd::RangeResult> range = client_.GetPrefixKeys(common, kAnyReservedScan, kCallBudget);
  if (!range.ok()) return range.status();
  if (range->more) return std::optional<bool>();  // too many to read at once
  return std::optional<bool>(std::any_of(range->kvs.begin(), range->kvs.end(),
                                         [&](const etcd::KeyValue& kv) { return wanted.contains(kv.key); }));
}

Result<std::optional<PoolRecord>> EtcdIpamStore::ReadPool(const std::string& pool_id) {
  return Guarded([&] { return ReadPoolLocked(pool_id); });
}

Result<std::optional<PoolRecord>> EtcdIpamStore::ReadPoolLocked(const std::string& pool_id) {
  // A look only: the key's revision stays what memory last saw, so no commit builds on this read.
  const std::string key = records::PoolKey(pool_id);
  Result<etcd::RangeResult> got = client_.Get(keys_.pools + key, kCallBudget);
  if (!got.ok()) return got.status();
  if (got->kvs.empty()) return std::optional<PoolRecord>();
  Result<PoolRecord> pool = records::DecodePool(BookKeys::Where(keys_.pools), key, got->kvs.front().value);
  if (!pool.ok()) return pool.status();
  return std::optional<PoolRecord>(std::move(pool).value());
}

int64_t EtcdIpamStore::LeaseRevision(const std::string& pool_id, const IpAddress& address) {
  std::scoped_lock lock(mu_);
  auto it = revisions_.find(keys_.Lease(pool_id, address));
  return it == revisions_.end() ? 0 : it->second;
}

Status EtcdIpamStore::FenceNode(const std::string& node) {
  if (options_.read_only) return FailedPrecondition("the shared address book was opened read-only (fsck)");
  // Waits for mu_ even after another call found etcd unavailable: whatever that node sent last,
  // the fence is asked for.
  std::scoped_lock lock(mu_);
  const std::string key = keys_.Commit(node);
  const std::string mark = fmt::format("{}`reservations release --node {}` on node {} at unix time {}", kReleasedMark,
                                       node, options_.node, UnixSeconds());
  // Unconditional: whatever that node sent last, it must not apply after this.
  Result<etcd::TxnResult> done = client_.Commit({.compares = {}, .success = {etcd::PutOp{key, mark}}}, kCallBudget);
  const Status answer = done.ok() ? OkStatus() : SharedStoreUnavailable(done.status());
  unavailable_.Note(answer);
  return answer;
}

Result<bool> EtcdIpamStore::CommitKeyMoved() {
  return Guarded([&]() -> Result<bool> {
    Result<etcd::RangeResult> got = client_.Get(CommitKey(), kCallBudget);
    if (!got.ok()) return got.status();
    auto known = revisions_.find(CommitKey());
    const int64_t now = got->kvs.empty() ? 0 : got->kvs.front().mod_revision;
    return now != (known == revisions_.end() ? 0 : known->second);
  });
}

std::vector<UndecodableKey> EtcdIpamStore::undecodable_keys() const {
  std::scoped_lock lock(undecodable_mu_);
  std::vector<UndecodableKey> out;
  for (const auto& [key, bad] : undecodable_) out.push_back(bad);
  return out;
}

}  // namespace smv::ipam
