#include "ipam/reservation_table.h"

#include <algorithm>
#include <functional>
#include <limits>

namespace smv::ipam {
namespace {

uint32_t ClampSeconds(int64_t seconds) {
  return static_cast<uint32_t>(std::clamp<int64_t>(seconds, 0, std::numeric_limits<uint32_t>::max()));
}

// Names smaller than this are not worth compacting for.
constexpr size_t kCompactAfterDeadBytes = 4096;

}  // namespace

size_t ReservationTable::HashName(std::string_view name) { return std::hash<std::string_view>{}(name); }

size_t ReservationTable::HashAddress(Uint128 address) {
  // splitmix64's finalizer over both halves: neighbouring addresses land far apart.
  uint64_t x = static_cast<uint64_t>(address) ^ (static_cast<uint64_t>(address >> 64) * 0x9e3779b97f4a7c15ULL);
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return static_cast<size_t>(x ^ (x >> 31));
}

ReservedName ReservationTable::View(uint32_t s) const {
  const Slot& slot = slots_[s];
  ReservedName view;
  view.name = NameOf(slot);
  view.address = AddressOf(s);
  if (slot.has_mac) view.mac = MacAddress(slot.mac).ToString();
  view.since = slot.since;
  view.gone_since = slot.gone_since;
  return view;
}

std::optional<uint32_t> ReservationTable::SlotOfName(std::string_view name) const {
  return by_name_.Find(HashName(name), [&](uint32_t s) { return NameOf(slots_[s]) == name; });
}

std::optional<uint32_t> ReservationTable::SlotOfAddress(Uint128 address) const {
  return by_address_.Find(HashAddress(address), [&](uint32_t s) { return AddressOf(s) == address; });
}

std::optional<ReservedName> ReservationTable::Find(std::string_view name) const {
  std::optional<uint32_t> slot = SlotOfName(name);
  if (!slot) return std::nullopt;
  return View(*slot);
}

std::optional<std::string_view> ReservationTable::NameAt(Uint128 address) const {
  std::optional<uint32_t> slot = SlotOfAddress(address);
  if (!slot) return std::nullopt;
  return NameOf(slots_[*slot]);
}

std::optional<Uint128> ReservationTable::AddressFor(std::string_view name) const {
  std::optional<uint32_t> slot = SlotOfName(name);
  if (!slot) return std::nullopt;
  return AddressOf(*slot);
}

std::string_view ReservationTable::FirstNameWithMac(const MacAddress& mac) const {
  std::string_view found;
  for (const Slot& slot : slots_) {
    if (!slot.has_mac || slot.mac != mac.bytes()) continue;
    if (found.empty() || NameOf(slot) < found) found = NameOf(slot);
  }
  return found;
}

void ReservationTable::Put(std::string_view name, Uint128 address, std::string_view mac, int64_t since,
                           int64_t gone_since) {
  const auto name_hash_of = [this](uint32_t s) { return HashName(NameOf(slots_[s])); };
  const auto address_hash_of = [this](uint32_t s) { return HashAddress(AddressOf(s)); };
  if (std::optional<uint32_t> holder = SlotOfAddress(address); holder && NameOf(slots_[*holder]) != name) {
    EraseSlot(*holder);
  }
  uint32_t s = 0;
  bool index_address = true;
  if (std::optional<uint32_t> existing = SlotOfName(name)) {
    s = *existing;
    index_address = AddressOf(s) != address;
    if (index_address) by_address_.Erase(HashAddress(AddressOf(s)), s, address_hash_of);
  } else {
    Slot fresh{};
    fresh.name_at = static_cast<uint32_t>(names_.size());
    fresh.name_size = static_cast<uint32_t>(name.size());
    names_.append(name);
    slots_.push_back(fresh);
    if (!highs_.empty()) highs_.push_back(0);
    s = static_cast<uint32_t>(slots_.size() - 1);
    by_name_.Insert(HashName(name), s, name_hash_of);
  }
  SetAddress(s, address);
  Slot& entry = slots_[s];
  entry.since = ClampSeconds(since);
  entry.gone_since = ClampSeconds(gone_since);
  const std::optional<MacAddress> parsed = MacAddress::Parse(mac);
  entry.has_mac = parsed.has_value();
  entry.mac = parsed ? parsed->bytes() : std::array<uint8_t, 6>{};
  if (index_address) by_address_.Insert(HashAddress(address), s, address_hash_of);
}

void ReservationTable::SetAddress(uint32_t s, Uint128 address) {
  const auto high = static_cast<uint64_t>(address >> 64);
  slots_[s].address_low = static_cast<uint64_t>(address);
  if (!highs_.empty()) {
    highs_[s] = high;
  } else if (slots_.size() == 1) {
    high_ = high;  // the first address of an empty table
  } else if (high != high_) {
    highs_.assign(slots_.size(), high_);  // a second high part: from now on, one per slot
    highs_[s] = high;
  }
}

bool ReservationTable::Erase(std::string_view name) {
  std::optional<uint32_t> slot = SlotOfName(name);
  if (!slot) return false;
  EraseSlot(*slot);
  return true;
}

void ReservationTable::EraseSlot(uint32_t slot) {
  const auto name_hash_of = [this](uint32_t s) { return HashName(NameOf(slots_[s])); };
  const auto address_hash_of = [this](uint32_t s) { return HashAddress(AddressOf(s)); };
  by_name_.Erase(HashName(NameOf(slots_[slot])), slot, name_hash_of);
  by_address_.Erase(HashAddress(AddressOf(slot)), slot, address_hash_of);
  dead_name_bytes_ += slots_[slot].name_size;
  const uint32_t last = static_cast<uint32_t>(slots_.size() - 1);
  if (slot != last) {  // keep the vector dense: the last slot takes the hole
    by_name_.Renumber(HashName(NameOf(slots_[last])), last, slot);
    by_address_.Renumber(HashAddress(AddressOf(last)), last, slot);
    slots_[slot] = slots_[last];
    if (!highs_.empty()) highs_[slot] = highs_[last];
  }
  slots_.pop_back();
  if (!highs_.empty()) highs_.pop_back();
  if (slots_.empty()) highs_ = {};  // the next address sets high_ again
  CompactNamesIfWasteful();
}

void ReservationTable::CompactNamesIfWasteful() {
  if (dead_name_bytes_ < kCompactAfterDeadBytes || dead_name_bytes_ * 2 < names_.size()) return;
  std::string packed;
  packed.reserve(names_.size() - dead_name_bytes_);
  for (Slot& slot : slots_) {
    const std::string_view name = NameOf(slot);
    slot.name_at = static_cast<uint32_t>(packed.size());
    packed.append(name);
  }
  names_ = std::move(packed);
  dead_name_bytes_ = 0;
}

void ReservationTable::ShrinkToFit() {
  slots_.shrink_to_fit();
  highs_.shrink_to_fit();
  names_.shrink_to_fit();
}

size_t ReservationTable::bytes() const {
  return slots_.capacity() * sizeof(Slot) + highs_.capacity() * sizeof(uint64_t) + names_.capacity() +
         by_name_.bytes() + by_address_.bytes();
}

}  // namespace smv::ipam
