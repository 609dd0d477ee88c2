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
#include <string>
#include <thread>

#include "driver/netlink/link_ops.h"

namespace smv::driver {

class LinkReaper {
 public:
  // `links` is the reaper's own (a libnl socket serves one thread at a time, and the driver's
  // calls must not queue behind a deletion).
  explicit LinkReaper(std::unique_ptr<nl::LinkOps> links);
  ~LinkReaper();  // deletes what is still queued, then stops
  LinkReaper(const LinkReaper&) = delete;
  LinkReaper& operator=(const LinkReaper&) = delete;

  // Queues `name` for deletion; an absent link is not an error. A link another instance tagged
  // is left alone (its LinkOps' Delete refuses it).
  void Delete(std::string name);
  // Returns once every link queued so far is deleted (or failed, which is logged).
  void Drain();

 private:
  void Run();

  std::unique_ptr<nl::LinkOps> links_;
  std::mutex mu_;
  std::condition_variable changed_;
  std::deque<std::string> queue_;
  bool busy_ = false;  // a deletion is running outside mu_
  bool stopping_ = false;
  std::thread worker_;
};

}  // namespace smv::driver
