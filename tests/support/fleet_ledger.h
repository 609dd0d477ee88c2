#pragma once
// What clients of a fleet were answered, checked as the answers come (a name always gets the
// address it got first, an address only ever goes to one name) and at the end against the book
// in etcd, read at one revision. Shared by the fleet socket and fault tests.

#include <map>
#include <mutex>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "etcd/kv_client.h"
#include "ipam/book_keys.h"
#include "ipam/records.h"

namespace smv::testing {

inline std::string BareAddress(const std::string& cidr) { return cidr.substr(0, cidr.find('/')); }

class FleetLedger {
 public:
  // An answer `address` (CIDR, as dockerd gets it) for `name`; a problem when it breaks
  // stickiness or uniqueness.
  void Answered(const std::string& name, const std::string& address) {
    std::scoped_lock lock(mu_);
    ++allocations_;
    auto [by_name, first] = address_of_.emplace(name, address);
    if (!first && by_name->second != address) {
      problems_.push_back(name + " got " + address + " after " + by_name->second);
    }
    auto [by_address, fresh] = name_at_.emplace(address, name);
    if (!fresh && by_address->second != name) {
      problems_.push_back("duplicate: " + address + " answered to " + name + " and " + by_address->second);
    }
  }
  void ReleaseAnswered() {
    std::scoped_lock lock(mu_);
    ++releases_;
  }
  std::pair<int, int> counts() const {
    std::scoped_lock lock(mu_);
    return {allocations_, releases_};
  }
  void Refused(const std::string& error) {
    std::scoped_lock lock(mu_);
    ++refusals_[Kind(error)];
  }
  void Problem(const std::string& problem) {
    std::scoped_lock lock(mu_);
    problems_.push_back(problem);
  }
  // `name` is left running (on the address it was answered).
  void Held(const std::string& name) {
    std::scoped_lock lock(mu_);
    held_[BareAddress(address_of_.at(name))] = name;
  }
  std::vector<std::string> problems() const {
    std::scoped_lock lock(mu_);
    return problems_;
  }
  // address -> name, as the clients leave them.
  std::map<std::string, std::string> held() const {
    std::scoped_lock lock(mu_);
    return held_;
  }
  // name -> the address it was always answered.
  std::map<std::string, std::string> reserved() const {
    std::scoped_lock lock(mu_);
    std::map<std::string, std::string> out;
    for (const auto& [name, address] : address_of_) out[name] = BareAddress(address);
    return out;
  }
  std::map<std::string, int> refusals() const {
    std::scoped_lock lock(mu_);
    return refusals_;
  }

 private:
  static std::string Kind(const std::string& error) {
    for (const char* kind : {"shared address store unavailable", "is running on node", "no answer"}) {
      if (error.find(kind) != std::string::npos) return kind;
    }
    return error.substr(0, 80);
  }
  mutable std::mutex mu_;
  std::map<std::string, std::string> address_of_;  // name -> first address answered
  std::map<std::string, std::string> name_at_;     // address -> name it was answered to
  std::map<std::string, std::string> held_;
  std::map<std::string, int> refusals_;
  std::vector<std::string> problems_;
  int allocations_ = 0, releases_ = 0;
};

// The fleet's book in etcd, read at one revision.
struct EtcdBook {
  std::map<std::string, std::string> leased;    // address -> the name its lease carries
  std::map<std::string, int> leases_of;         // name -> how many leases carry it
  std::map<std::string, std::string> reserved;  // name -> reserved address
  int64_t revision = 0;
};

inline EtcdBook ReadEtcdBook(const std::vector<etcd::Endpoint>& endpoints,
                             const std::string& prefix = std::string(ipam::kDefaultBookPrefix)) {
  EtcdBook book;
  etcd::KvClient reader({.endpoints = endpoints});
  auto all = reader.GetPrefix(prefix);
  EXPECT_TRUE(all.ok()) << all.status().message();
  if (!all.ok()) return book;
  book.revision = all->revision;
  const ipam::BookKeys keys(prefix);
  const std::string &leases = keys.leases, &names = keys.reservations;
  for (const etcd::KeyValue& kv : all->kvs) {
    if (kv.key.starts_with(leases)) {
      auto lease = ipam::records::DecodeLease("etcd", kv.key.substr(leases.size()), kv.value);
      EXPECT_TRUE(lease.ok()) << lease.status().message();
      if (!lease.ok()) continue;
      book.leased[lease->address.ToString()] = lease->lease.name;
      ++book.leases_of[lease->lease.name];
    } else if (kv.key.starts_with(names)) {
      auto r = ipam::records::DecodeReservation("etcd", kv.key.substr(names.size()), kv.value);
      EXPECT_TRUE(r.ok()) << r.status().message();
      if (r.ok()) book.reserved[r->name] = r->address.ToString();
    }
  }
  return book;
}

}  // namespace smv::testing
