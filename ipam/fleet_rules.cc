#include "ipam/fleet_rules.h"

#include <set>

namespace smv::ipam {
namespace {

// One writer: memory is the book, and every decision is made under the service's mutex.
class LocalBookRules : public BookRules {
 public:
  void Complete(IpamBatch&, const BookView&) const override {}
  bool CommandsReloadFirst() const override { return false; }
};

class SharedBookRules : public BookRules {
 public:
  bool CommandsReloadFirst() const override { return true; }

  void Complete(IpamBatch& batch, const BookView& view) const override {
    BookReads& reads = batch.reads;
    std::set<std::pair<std::string, std::string>> named;  // (pool, name) whose reservation is written
    for (const ReservationRecord& r : batch.put_reservations) named.emplace(r.pool_id, r.name);
    std::set<std::string> pools;
    for (const PoolRecord& p : batch.put_pools) pools.insert(p.config.id);

    for (const LeaseRecord& l : batch.put_leases) {
      reads.leases.emplace_back(l.pool_id, l.address);
      reads.reserved_addresses.emplace_back(l.pool_id, l.address);
      if (!l.lease.name.empty()) {
        reads.reservations.emplace_back(l.pool_id, l.lease.name);
        // Moves the name's key, so that another node deciding that the name runs nowhere is refused.
        if (named.insert({l.pool_id, l.lease.name}).second) {
          if (std::optional<ReservationRecord> r = view.reservation(l.pool_id, l.lease.name)) {
            batch.put_reservations.push_back(*r);
          }
        }
      }
      if (l.lease.kind == LeaseKind::kGateway) {
        reads.pools.push_back(l.pool_id);
        if (pools.insert(l.pool_id).second) {
          if (std::optional<PoolRecord> p = view.pool(l.pool_id)) batch.put_pools.push_back(*p);
        }
      }
    }
    for (const ReservationRecord& r : batch.put_reservations) {
      reads.leases.emplace_back(r.pool_id, r.address);
      reads.reserved_addresses.emplace_back(r.pool_id, r.address);
    }
  }
};

}  // namespace

std::unique_ptr<BookRules> BookRules::For(bool shared_book) {
  if (shared_book) return std::make_unique<SharedBookRules>();
  return std::make_unique<LocalBookRules>();
}

}  // namespace smv::ipam
