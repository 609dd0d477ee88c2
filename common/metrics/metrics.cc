#include "common/metrics/metrics.h"

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include <map>
#include <mutex>
#include <utility>

#ifndef SMV_VERSION
#define SMV_VERSION "unknown"
#endif

namespace smv::metrics {
namespace {

// Plugin calls take 0.1-10 ms; etcd commits up to the 10 s budget; a slow start shows at 1-5 s.
const prometheus::Histogram::BucketBoundaries& LatencyBuckets() {
  static const prometheus::Histogram::BucketBoundaries buckets = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                                  0.1,    0.25,  0.5,    1,     2.5,  5,     10};
  return buckets;
}

prometheus::Family<prometheus::Counter>& CounterFamily(prometheus::Registry& r, const char* name, const char* help) {
  return prometheus::BuildCounter().Name(name).Help(help).Register(r);
}
prometheus::Family<prometheus::Histogram>& HistogramFamily(prometheus::Registry& r, const char* name,
                                                           const char* help) {
  return prometheus::BuildHistogram().Name(name).Help(help).Register(r);
}

// "failed precondition" -> "failed_precondition": label values as Prometheus users write them.
std::string Label(std::string_view text) {
  std::string out(text);
  for (char& c : out) {
    if (c == ' ') c = '_';
  }
  return out;
}

// A family's metrics by their (at most two) label values. Family::Add builds a whole metric
// (a histogram allocates its buckets) and a label map before it finds the metric already there:
// that was 13 % of an in-process RequestAddress+ReleaseAddress (bench_tool inprocess, perf).
// Here a call that finds its metric allocates nothing.
template <typename Metric>
class LabelledMetrics {
 public:
  LabelledMetrics(prometheus::Family<Metric>& family, std::string first_label, std::string second_label = "")
      : family_(family), first_label_(std::move(first_label)), second_label_(std::move(second_label)) {}

  template <typename... Args>
  Metric& At(std::string_view first, std::string_view second = "", const Args&... args) {
    std::lock_guard lock(mutex_);
    if (auto it = metrics_.find(View{first, second}); it != metrics_.end()) return *it->second;
    prometheus::Labels labels{{first_label_, Label(first)}};
    if (!second_label_.empty()) labels.emplace(second_label_, Label(second));
    Metric& metric = family_.Add(labels, args...);
    metrics_.emplace(std::pair{std::string(first), std::string(second)}, &metric);
    return metric;
  }

 private:
  using View = std::pair<std::string_view, std::string_view>;
  struct ViewLess {  // lets find() take string_views: no key is built for a lookup
    using is_transparent = void;
    static View AsView(const View& v) { return v; }
    static View AsView(const std::pair<std::string, std::string>& p) { return {p.first, p.second}; }
    template <typename L, typename R>
    bool operator()(const L& l, const R& r) const {
      return AsView(l) < AsView(r);
    }
  };
  prometheus::Family<Metric>& family_;
  const std::string first_label_;
  const std::string second_label_;
  std::mutex mutex_;
  std::map<std::pair<std::string, std::string>, Metric*, ViewLess> metrics_;  // Family owns the metrics
};

struct Families {
  Families()
      : registry(std::make_shared<prometheus::Registry>()),
        api_calls(CounterFamily(*registry, "static_macvlan_api_requests_total",
                                "Plugin API calls handled, by method and result (ok or the error's code)"),
                  "method", "result"),
        api_seconds(HistogramFamily(*registry, "static_macvlan_api_request_duration_seconds",
                                    "Time to answer a plugin API call, by method"),
                    "method"),
        commits(CounterFamily(*registry, "static_macvlan_store_commits_total",
                              "Commits of the address book to its store, by store and result"),
                "store", "result"),
        commit_seconds(HistogramFamily(*registry, "static_macvlan_store_commit_duration_seconds",
                                       "Time to commit the address book durably, by store"),
                       "store"),
        engine_calls(CounterFamily(*registry, "static_macvlan_engine_requests_total",
                                   "Calls to the Docker engine API (to learn container names), by result"),
                     "result"),
        announcements(CounterFamily(*registry, "static_macvlan_announcements_total",
                                    "Gratuitous ARPs (kind arp) and unsolicited neighbour advertisements (kind na) "
                                    "sent after a Join, by result"),
                      "kind", "result") {
    prometheus::BuildGauge()
        .Name("static_macvlan_build_info")
        .Help("The running build: always 1, its version as a label")
        .Register(*registry)
        .Add({{"version", SMV_VERSION}})
        .Set(1);
  }
  std::shared_ptr<prometheus::Registry> registry;
  LabelledMetrics<prometheus::Counter> api_calls;
  LabelledMetrics<prometheus::Histogram> api_seconds;
  LabelledMetrics<prometheus::Counter> commits;
  LabelledMetrics<prometheus::Histogram> commit_seconds;
  LabelledMetrics<prometheus::Counter> engine_calls;
  LabelledMetrics<prometheus::Counter> announcements;
};

Families& Get() {
  static Families families;
  return families;
}

}  // namespace

void ObserveApiCall(std::string_view method, std::string_view result, double seconds) {
  Families& f = Get();
  f.api_calls.At(method, result).Increment();
  f.api_seconds.At(method, "", LatencyBuckets()).Observe(seconds);
}

struct StoreCommitMetrics::Found {
  std::string store;
  prometheus::Counter& ok;
  prometheus::Histogram& seconds;
};

StoreCommitMetrics::StoreCommitMetrics(std::string_view store)
    : found_(new Found{std::string(store), Get().commits.At(store, "ok"),
                       Get().commit_seconds.At(store, "", LatencyBuckets())}) {}

StoreCommitMetrics::~StoreCommitMetrics() = default;

void StoreCommitMetrics::Observe(std::string_view result, double seconds) {
  (result == "ok" ? found_->ok : Get().commits.At(found_->store, result)).Increment();
  found_->seconds.Observe(seconds);
}

void CountAnnouncement(std::string_view kind, bool ok) {
  Get().announcements.At(kind, ok ? "ok" : "error").Increment();
}

void CountEngineCall(bool ok) { Get().engine_calls.At(ok ? "ok" : "error").Increment(); }

std::string Render(const std::vector<PoolGauges>& pools) {
  // Pools come and go: their gauges live in a registry of this scrape only.
  prometheus::Registry now;
  auto gauge = [&](const char* name, const char* help) -> prometheus::Family<prometheus::Gauge>& {
    return prometheus::BuildGauge().Name(name).Help(help).Register(now);
  };
  auto& addresses = gauge("static_macvlan_pool_addresses", "Addresses in the pool's subnet");
  auto& in_use = gauge("static_macvlan_pool_addresses_in_use", "Addresses of the pool leased now");
  auto& reserved =
      gauge("static_macvlan_pool_reserved_free", "Addresses reserved for a container name and not leased now");
  auto& drifted = gauge("static_macvlan_pool_names_drifted",
                        "Names holding another address than their reservation (see reservations ls)");
  for (const PoolGauges& p : pools) {
    const prometheus::Labels labels{{"network", p.network}, {"pool", p.pool}};
    addresses.Add(labels).Set(p.addresses);
    in_use.Add(labels).Set(p.in_use);
    reserved.Add(labels).Set(p.reserved_free);
    drifted.Add(labels).Set(p.drifted);
  }
  std::vector<prometheus::MetricFamily> families = Get().registry->Collect();
  for (prometheus::MetricFamily& family : now.Collect()) families.push_back(std::move(family));
  return prometheus::TextSerializer().Serialize(families);
}

}  // namespace smv::metrics
