#pragma once
// The daemon's metrics, in Prometheus' text format (prometheus-cpp's registry and serializer stay
// behind this header). One registry per process: the layers record into it through these
// functions, and the HTTP edge renders it at GET /metrics. No container names as labels: their
// number has no bound.

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace smv::metrics {

// One handled plugin API call: `method` as "IpamDriver.RequestAddress", `result` "ok" or an
// error code's name.
void ObserveApiCall(std::string_view method, std::string_view result, double seconds);
// The commits of the address book to one store ("lmdb" or "etcd"). Its metrics are found once,
// here: a commit is counted without a lookup by label (that lookup was 2 % of an in-process
// RequestAddress+ReleaseAddress, bench_tool inprocess under callgrind).
class StoreCommitMetrics {
 public:
  explicit StoreCommitMetrics(std::string_view store);
  ~StoreCommitMetrics();
  StoreCommitMetrics(const StoreCommitMetrics&) = delete;
  StoreCommitMetrics& operator=(const StoreCommitMetrics&) = delete;
  // One commit; `result` as above.
  void Observe(std::string_view result, double seconds);

 private:
  struct Found;
  std::unique_ptr<Found> found_;
};
// One call to the engine API; `ok` false when it failed or did not answer in time.
void CountEngineCall(bool ok);

// One gratuitous ARP ("arp") or unsolicited neighbour advertisement ("na") sent, or failed.
void CountAnnouncement(std::string_view kind, bool ok);

// A pool as the address book holds it at scrape time.
struct PoolGauges {
  std::string pool;          // pool id, e.g. "192.0.2.0/24" or "local 192.0.2.0/24"
  std::string network;       // Docker's short id of the network on it ("a,b" for several, "" for none yet)
  double addresses = 0;      // every address of the subnet
  double in_use = 0;         // leased now
  double reserved_free = 0;  // reserved for a name, not leased now
  double drifted = 0;        // names holding another address than their reservation
};

// Every metric of the process plus `pools`, in the text exposition format (version 0.0.4).
std::string Render(const std::vector<PoolGauges>& pools);

inline constexpr const char* kContentType = "text/plain; version=0.0.4; charset=utf-8";

}  // namespace smv::metrics
