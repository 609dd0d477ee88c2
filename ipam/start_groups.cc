// Start groups (engines < 29): tasks of one swarm service starting together on this host share
// out their slots' reserved addresses (AddressRequest::share_names), and Join swaps two
// reservations when the container is another slot of the group. The name book's part: the
// share-outs awaiting their Join, the swap, and which slots to read from a shared book first.
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>

#include "ipam/name_book.h"

namespace smv::ipam {

Result<AttachOutcome> NameBook::SwapInStartGroup(PoolState& state, const IpAddress& address, const Lease& lease,
                                                 const std::string& name, const std::string& owner,
                                                 const std::string& mac) {
  const std::string& pool_id = state.record.config.id;
  const int64_t now = clock_();
  const std::optional<ReservationRecord> theirs = FindReservation(state, owner);  // on `address`
  const std::optional<ReservationRecord> mine = FindReservation(state, name);
  if (!theirs)
    return Internal(
        fmt::format("address {} is reserved for \"{}\", who has no reservation", address.ToString(), owner));
  Lease named = lease;
  named.name = name;
  if (!mac.empty()) named.mac = mac;
  IpamBatch batch;
  batch.put_leases.push_back(LeaseRecord{pool_id, address, named, now});
  // The address keeps its MAC (derived from it), so each reservation's MAC goes with its address.
  batch.put_reservations.push_back(ReservationRecord{pool_id, name, address, named.mac, now, 0});
  if (mine) {
    batch.put_reservations.push_back(
        ReservationRecord{pool_id, owner, mine->address, mine->mac, theirs->since, theirs->gone_since});
  } else {
    batch.delete_reservations.emplace_back(pool_id, owner);  // it takes a free address when it asks
  }
  SMV_RETURN_IF_ERROR(mirror_.EnqueueDecodable(batch));
  state.allocator.AddLease(address, named);
  for (const ReservationRecord& r : batch.put_reservations) Remember(state, r);  // `name` first: see Put
  if (!mine) state.allocator.RemoveReservation(owner);
  spdlog::info("container {} took {} of its start group: reservations swapped ({} -> {}, {} -> {})", name,
               address.ToString(), name, address.ToString(), owner,
               mine ? mine->address.ToString() : std::string("none"));
  return AttachOutcome::kSwapped;
}

bool NameBook::SharedOutTo(const std::string& pool_id, const IpAddress& address, std::string_view a,
                           std::string_view b) const {
  auto it = shared_out_.find({pool_id, address});
  if (it == shared_out_.end()) return false;
  const std::vector<std::string>& group = it->second;
  return std::find(group.begin(), group.end(), a) != group.end() &&
         std::find(group.begin(), group.end(), b) != group.end();
}

void NameBook::NoteSharedOut(const std::string& pool_id, const IpAddress& address, std::vector<std::string> group) {
  if (shared_out_.size() >= kMaxSharedOut) {
    std::erase_if(shared_out_, [&](const auto& entry) { return !AwaitsJoin(entry.first.first, entry.first.second); });
  }
  shared_out_[{pool_id, address}] = std::move(group);
}

void NameBook::ForgetSharedOut(const std::string& pool_id, const IpAddress& address) {
  if (!shared_out_.empty() && !AwaitsJoin(pool_id, address)) shared_out_.erase({pool_id, address});
}

bool NameBook::AwaitsJoin(const std::string& pool_id, const IpAddress& address) const {
  auto pool = pools_.find(pool_id);
  if (pool == pools_.end()) return false;
  const Lease* lease = pool->second.allocator.FindLease(address);
  return lease != nullptr && lease->name.empty() && lease->kind == LeaseKind::kEndpoint && lease->node == node_;
}

std::vector<std::string> NameBook::StartGroupOf(const std::string& pool_id, const std::string& name) const {
  for (const auto& [where, group] : shared_out_) {
    if (where.first == pool_id && std::find(group.begin(), group.end(), name) != group.end()) return group;
  }
  return {};
}

std::vector<std::string> NameBook::NamesToRead(const std::string& pool_id,
                                               const std::vector<std::string>& names) const {
  auto it = pools_.find(pool_id);
  if (it == pools_.end()) return names;
  const PoolAllocator& allocator = it->second.allocator;
  std::vector<std::string> out;
  for (const std::string& n : names) {
    const std::optional<IpAddress> reserved = allocator.ReservationOf(n);
    const Lease* lease = reserved ? allocator.FindLease(*reserved) : nullptr;
    if (!reserved || (lease != nullptr && lease->node != node_)) out.push_back(n);
  }
  return out;
}

}  // namespace smv::ipam
