#pragma once
// Deletes links on a thread of its own. Deleting a link makes the kernel wait for an RCU
// barrier before the netlink request returns (10-20 ms on the benchmark machine). Docker's
// built-in macvlan never waits for that, because its link dies with the container's namespace,
// so a DeleteEndpoint reply should not wait for it either. A deletion lost in a crash is swept
// at the next start (DriverService::Reconcile deletes endpoint links that no record owns).

#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <stop_token>
#include <string>
#include <thread>

#include "driver/netlink/link_ops.h"

namespace smv::driver {

class LinkReaper {
 public:
  // `links` is the reaper's own (a libnl socket serves one thread at a time, and the driver's
  // calls must not queue behind a deletion).
  explicit LinkReaper(std::unique_ptr<nl::LinkOps> links);
  ~LinkReaper() = default;  // deletes what is still queued, then stops (worker_'s stop request and join)
  LinkReaper(const LinkReaper&) = delete;
  LinkReaper& operator=(const LinkReaper&) = delete;

  // Queues `name` for deletion; an absent link is not an error. A link another instance tagged
  // is left alone (its LinkOps' Delete refuses it).
  void Delete(std::string name);
  // Returns once every link queued so far is deleted (or failed, which is logged; a failed
  // deletion is not tried again: the next start sweeps the link).
  void Drain();

 private:
  // Deletes queued links until a stop is requested and the queue is empty.
  void Run(const std::stop_token& stop);
  void DeleteOne(const std::string& name);

  std::unique_ptr<nl::LinkOps> links_;
  std::mutex mu_;
  std::condition_variable_any changed_;  // _any: its wait also ends on worker_'s stop request
  std::deque<std::string> queue_;
  bool busy_ = false;    // a deletion is running outside mu_
  std::jthread worker_;  // last: it starts after, and stops before, the members it uses
};

}  // namespace smv::driver
