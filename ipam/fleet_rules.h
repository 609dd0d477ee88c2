#pragma once
// The fleet's rules: what a decision on a book shared by hosts depends on, so that the commit
// acting on it compares exactly that (a decision is only as fresh as the commit that checks it).
// Chosen once at start: a local book has one writer, whose memory is the book, and needs none.
// The decisions are IpamService's verbs (pools_and_addresses.cc) and the name book's
// (name_book.cc); the store mirror completes every batch with these rules before it queues it (store_mirror.cc).
//
// | decision                                        | reads, compared by the commit              |
// |-------------------------------------------------|--------------------------------------------|
// | an address is free for this lease (any kind)     | the lease, and who reserves the address     |
// | a named lease: where the name's reservation is, | the name's reservation                      |
// |   and that it runs on no other node             |                                            |
// | the subnet's one gateway                         | the pool                                   |
// | --aux-address values agree with the subnet's    | the pool; none for a host that is one of   |
// |                                                 |   its users (AgreesAsAUserLocked)          |
// | a reservation (new name, CLI reserve): the       | the lease on its address, and who reserves  |
// |   address is no other container's or name's     |   it                                       |
// | CLI release by name or address, release --node   | decided on a reload made for the command   |
//
// And what a change writes so that other nodes' decisions see it: a named lease rewrites its
// name's reservation (a second node's "runs nowhere else" then compares a key that moved), a
// gateway lease rewrites its pool. Written and deleted keys are always compared (etcd_store.h).

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "ipam/ipam_store.h"

namespace smv::ipam {

// What the rules may look up in the service's memory while they complete a batch.
struct BookView {
  std::function<std::optional<ReservationRecord>(const std::string& pool_id, const std::string& name)> reservation;
  std::function<std::optional<PoolRecord>(const std::string& pool_id)> pool;
};

class BookRules {
 public:
  virtual ~BookRules() = default;
  static std::unique_ptr<BookRules> For(bool shared_book);
  // Adds to `batch` the reads its writes were decided on, and the writes other nodes' rules
  // compare. Called once for each batch, before it is queued for commit.
  virtual void Complete(IpamBatch& batch, const BookView& view) const = 0;
  // Whether a command a user runs against the whole book (reserve, release by name or address,
  // release --node) decides on a reload made for it rather than on this host's view.
  virtual bool CommandsReloadFirst() const = 0;
};

}  // namespace smv::ipam
