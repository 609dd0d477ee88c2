#pragma once
// The name -> address reservations of one pool, kept compact because a pool can hold tens of
// thousands of them for the life of the daemon: one 32-byte slot per reservation in a vector,
// the names packed in one string, and two open-addressing indexes of 4-byte slot numbers
// (by name and by address) instead of a node-based map per direction. Lookups are O(1).

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/ip.h"

namespace smv::ipam {

// One reservation as the table hands it out. `name` points into the table: valid until the
// table changes.
struct ReservedName {
  std::string_view name;
  Uint128 address = 0;
  std::string mac;  // lowercase "aa:bb:cc:dd:ee:ff", or "" when none is known
  int64_t since = 0;
  int64_t gone_since = 0;
};

// A hash index of slot numbers: linear probing over 4-byte buckets, backward-shift deletion.
// It stores no keys; the caller's `hash_of(slot)` and `matches(slot)` read them from the slots.
class SlotIndex {
 public:
  template <typename Matches>
  std::optional<uint32_t> Find(size_t hash, Matches matches) const {
    if (buckets_.empty()) return std::nullopt;
    for (size_t i = hash & mask(); buckets_[i] != 0; i = (i + 1) & mask()) {
      if (matches(buckets_[i] - 1)) return buckets_[i] - 1;
    }
    return std::nullopt;
  }
  template <typename HashOf>
  void Insert(size_t hash, uint32_t slot, HashOf hash_of) {
    if ((count_ + 1) * 4 > buckets_.size() * 3) Grow(hash_of);
    size_t i = hash & mask();
    while (buckets_[i] != 0) i = (i + 1) & mask();
    buckets_[i] = slot + 1;
    ++count_;
  }
  // Removes `slot`, which must be present under `hash`.
  template <typename HashOf>
  void Erase(size_t hash, uint32_t slot, HashOf hash_of) {
    size_t hole = BucketOf(hash, slot);
    // Pull later entries of the probe run back into the hole unless that would put them
    // before their home bucket, so that every entry stays reachable from its home.
    for (size_t j = (hole + 1) & mask(); buckets_[j] != 0; j = (j + 1) & mask()) {
      const size_t home = hash_of(buckets_[j] - 1) & mask();
      if (((j - home) & mask()) >= ((j - hole) & mask())) {
        buckets_[hole] = buckets_[j];
        hole = j;
      }
    }
    buckets_[hole] = 0;
    --count_;
  }
  // `from` was renumbered to `to` (the vector's last slot moved into a hole).
  void Renumber(size_t hash, uint32_t from, uint32_t to) { buckets_[BucketOf(hash, from)] = to + 1; }
  size_t bytes() const { return buckets_.capacity() * sizeof(uint32_t); }

 private:
  size_t mask() const { return buckets_.size() - 1; }
  size_t BucketOf(size_t hash, uint32_t slot) const {
    size_t i = hash & mask();
    while (buckets_[i] != slot + 1) i = (i + 1) & mask();
    return i;
  }
  template <typename HashOf>
  void Grow(HashOf hash_of) {
    std::vector<uint32_t> old = std::move(buckets_);
    buckets_.assign(old.empty() ? 16 : old.size() * 2, 0);
    for (uint32_t entry : old) {
      if (entry == 0) continue;
      size_t i = hash_of(entry - 1) & mask();
      while (buckets_[i] != 0) i = (i + 1) & mask();
      buckets_[i] = entry;
    }
  }

  std::vector<uint32_t> buckets_;  // slot + 1; 0 = empty; size a power of two
  size_t count_ = 0;
};

class ReservationTable {
 public:
  // Sets `name`'s reservation. Another name reserved at `address` loses it (one name per
  // address). A `mac` that is not a MAC address is kept as none. Times are unix seconds.
  // `name` must not point into this table.
  void Put(std::string_view name, Uint128 address, std::string_view mac, int64_t since, int64_t gone_since);
  bool Erase(std::string_view name);  // false: `name` had none

  std::optional<ReservedName> Find(std::string_view name) const;
  std::optional<std::string_view> NameAt(Uint128 address) const;
  std::optional<Uint128> AddressFor(std::string_view name) const;  // Find without the details
  // The alphabetically first name reserved with `mac` (a MAC can move between names), or "".
  // A scan, comparing bytes: called for every unnamed RequestAddress, so it formats nothing.
  std::string_view FirstNameWithMac(const MacAddress& mac) const;
  size_t size() const { return slots_.size(); }
  bool empty() const { return slots_.empty(); }
  template <typename Fn>
  void ForEach(Fn fn) const {
    for (uint32_t s = 0; s < slots_.size(); ++s) fn(View(s));
  }

  // Drops spare capacity (after loading, when the final size is known).
  void ShrinkToFit();
  size_t bytes() const;  // heap bytes held, for tests and benchmarks

 private:
  struct Slot {
    uint64_t address_low;         // the high 64 bits: high_ or highs_
    uint32_t name_at, name_size;  // in names_
    uint32_t since, gone_since;   // unix seconds (an unsigned 32-bit count lasts until 2106)
    std::array<uint8_t, 6> mac;
    bool has_mac;
  };
  static_assert(sizeof(Slot) == 32);

  std::string_view NameOf(const Slot& slot) const { return {names_.data() + slot.name_at, slot.name_size}; }
  Uint128 AddressOf(uint32_t s) const {
    return (static_cast<Uint128>(highs_.empty() ? high_ : highs_[s]) << 64) | slots_[s].address_low;
  }
  void SetAddress(uint32_t s, Uint128 address);
  static size_t HashName(std::string_view name);
  static size_t HashAddress(Uint128 address);
  ReservedName View(uint32_t s) const;
  std::optional<uint32_t> SlotOfName(std::string_view name) const;
  std::optional<uint32_t> SlotOfAddress(Uint128 address) const;
  void EraseSlot(uint32_t slot);
  void CompactNamesIfWasteful();

  std::vector<Slot> slots_;
  // The addresses' high 64 bits. A pool's addresses share them (every IPv4 pool, and IPv6 down to
  // a /64), so the table keeps them once, in high_, and highs_ stays empty; only a table holding
  // two different ones keeps them per slot, in highs_ (parallel to slots_), until it is empty.
  uint64_t high_ = 0;
  std::vector<uint64_t> highs_;
  std::string names_;           // every slot's name, back to back
  size_t dead_name_bytes_ = 0;  // bytes in names_ of erased names
  SlotIndex by_name_, by_address_;
};

}  // namespace smv::ipam
