#pragma once
// The address allocator of one pool: pure (no I/O, no locks, no clocks), deterministic and
// table-tested. It keeps what is leased and reserved in memory and answers "which address
// should this request get"; the IPAM service stores the answer and then applies it here.
//
// Cost: lookups of leases and reservations are O(1) (hash indexes), finding the next free
// address is O(log n) in the number of runs of taken addresses, and memory grows with those
// addresses only, never with the size of the pool (an IPv6 /64 costs nothing).

#include <map>
#include <optional>
#include <string>
#include <unordered_map>

#include "common/ip.h"
#include "common/status.h"
#include "ipam/pool.h"
#include "ipam/reservation_table.h"

namespace smv::ipam {

// kAux: an --aux-address of a subnet shared by several hosts (a container's --ip and an
// --aux-address look alike on the wire; a single host's aux addresses stay kEndpoint).
enum class LeaseKind { kGateway, kEndpoint, kAux };
std::string_view LeaseKindName(LeaseKind kind);
std::optional<LeaseKind> LeaseKindFromName(std::string_view name);

struct Lease {
  LeaseKind kind = LeaseKind::kEndpoint;
  std::string name;  // container name when known
  std::string mac;
  std::string node;  // the host holding it in a book shared by hosts; "" on a single host
};

struct AddressRequest {
  std::optional<IpAddress> preferred;  // --ip / --gateway / --aux-address
  std::string name;                    // container name when the engine sent it (Docker >= 29)
  // A name guessed from indirect signals (engines < 29): used to find the name's reservation and
  // to refuse another name's reserved --ip, but never to create a reservation.
  std::string hint_name;
  // Tasks of one service starting together, which the engine does not tell apart (engines < 29):
  // when the hint's reserved address is not free, the request takes one of these names' reserved
  // addresses that is, so the service keeps its set of addresses; Join swaps the reservations
  // when the container turns out to be another of them (NameBook::AttachName).
  std::vector<std::string> share_names;
  bool gateway = false;  // RequestAddressType com.docker.network.gateway
  std::string node;      // the requesting host in a shared book; "" on a single host
};

// What the allocator decided.
struct Choice {
  IpAddress address;
  bool already_leased_as_gateway = false;  // a repeated gateway request: nothing to change
  bool reserve_for_name = false;           // store (or move) `name`'s reservation to `address`
  bool dynamic = false;                    // picked from the range (moves the next-fit cursor)
  std::string shared_from;                 // the share name whose reserved address this is
};

// A set of addresses kept as merged closed intervals, so "the next address not in the set"
// is one lookup however many addresses are taken.
class IntervalSet {
 public:
  void Insert(Uint128 x);
  void Erase(Uint128 x);
  bool Contains(Uint128 x) const;
  // The smallest y >= from, y <= last, not in the set; nullopt when there is none.
  std::optional<Uint128> NextAbsent(Uint128 from, Uint128 last) const;
  size_t interval_count() const { return intervals_.size(); }

 private:
  std::map<Uint128, Uint128> intervals_;  // start -> end (inclusive), disjoint, never adjacent
};

struct Uint128Hash {
  size_t operator()(Uint128 x) const {
    return std::hash<uint64_t>{}(static_cast<uint64_t>(x) ^ static_cast<uint64_t>(x >> 64));
  }
};

// The refusal of a name that holds `address` on another host of a shared book.
Status NameRunningOnAnotherNode(std::string_view name, std::string_view node, const IpAddress& address);

class PoolAllocator {
 public:
  using LeaseMap = std::unordered_map<Uint128, Lease, Uint128Hash>;

  explicit PoolAllocator(PoolConfig config);

  const PoolConfig& config() const { return config_; }

  // Decides the address for `request` without changing anything. Errors:
  // kInvalidArgument (address outside the subnet, network or broadcast address),
  // kAlreadyExists (address in use), kFailedPrecondition (reserved for another name),
  // kResourceExhausted (no free address in the dynamic range; the message names the range),
  // kFailedPrecondition too when the name holds its address on another node of a shared book.
  Result<Choice> Choose(const AddressRequest& request) const;

  // State changes, applied after the store has committed them. Idempotent.
  // `dynamic`: the address was picked by the allocator, so the next pick starts after it.
  void AddLease(const IpAddress& ip, Lease lease, bool dynamic = false);
  void RemoveLease(const IpAddress& ip);
  // Sets `name`'s reservation (address and details); another name's reservation of the
  // same address is dropped.
  void AddReservation(std::string_view name, const IpAddress& ip, std::string_view mac = "", int64_t since = 0,
                      int64_t gone_since = 0);
  void RemoveReservation(std::string_view name);

  const Lease* FindLease(const IpAddress& ip) const;
  std::optional<std::string_view> ReservedFor(const IpAddress& ip) const;
  std::optional<IpAddress> ReservationOf(std::string_view name) const;
  const LeaseMap& leases() const { return leases_; }
  const ReservationTable& reservations() const { return reservations_; }
  void ShrinkToFit() { reservations_.ShrinkToFit(); }  // after loading
  // Moves the next-fit cursor to the range's address `seed` (modulo its size). Nodes sharing a
  // pool start at random points, so those that reload together do not all chase its first gap.
  void MoveCursor(uint64_t seed);

 private:
  bool IsBlocked(Uint128 x) const;
  void Refresh(Uint128 x);  // keeps blocked_ equal to (leased or reserved) inside the range
  Result<Choice> ChooseDynamic() const;
  Result<Choice> ChoosePreferred(const AddressRequest& request, const std::string& who,
                                 const std::optional<IpAddress>& reserved) const;

  PoolConfig config_;
  LeaseMap leases_;
  ReservationTable reservations_;
  IntervalSet blocked_;  // dynamic-range addresses that are leased or reserved
  Uint128 next_ = 0;     // next-fit cursor: released addresses are not reused at once
};

}  // namespace smv::ipam
