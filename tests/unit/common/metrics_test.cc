#include "common/metrics/metrics.h"

#include <gtest/gtest.h>

#include <string>

namespace smv::metrics {
namespace {

bool Has(const std::string& text, const std::string& line) { return text.find(line + "\n") != std::string::npos; }

// The registry is the process's: each test uses label values of its own.
TEST(MetricsTest, RepeatedCallsCountOnOneSeriesPerLabelValues) {
  for (int i = 0; i < 3; ++i) ObserveApiCall("Test.Repeat", "ok", 0.0002);
  ObserveApiCall("Test.Repeat", "failed precondition", 0.02);
  const std::string text = Render({});
  EXPECT_TRUE(Has(text, R"(static_macvlan_api_requests_total{method="Test.Repeat",result="ok"} 3)")) << text;
  EXPECT_TRUE(Has(text, R"(static_macvlan_api_requests_total{method="Test.Repeat",result="failed_precondition"} 1)"))
      << text;
  EXPECT_TRUE(Has(text, R"(static_macvlan_api_request_duration_seconds_count{method="Test.Repeat"} 4)")) << text;
  EXPECT_TRUE(Has(text, R"(static_macvlan_api_request_duration_seconds_bucket{method="Test.Repeat",le="0.0005"} 3)"))
      << text;
}

TEST(MetricsTest, StoresAnnouncementsAndEngineCallsKeepTheirLabels) {
  StoreCommitMetrics commits("test-store");
  commits.Observe("unavailable", 0.003);
  commits.Observe("unavailable", 0.003);
  commits.Observe("ok", 0.001);
  CountAnnouncement("test-kind", false);
  CountEngineCall(true);
  const std::string text = Render({});
  EXPECT_TRUE(Has(text, R"(static_macvlan_store_commits_total{result="unavailable",store="test-store"} 2)")) << text;
  EXPECT_TRUE(Has(text, R"(static_macvlan_store_commits_total{result="ok",store="test-store"} 1)")) << text;
  EXPECT_TRUE(Has(text, R"(static_macvlan_store_commit_duration_seconds_count{store="test-store"} 3)")) << text;
  EXPECT_TRUE(Has(text, R"(static_macvlan_announcements_total{kind="test-kind",result="error"} 1)")) << text;
  EXPECT_NE(text.find(R"(static_macvlan_engine_requests_total{result="ok"})"), std::string::npos) << text;
}

}  // namespace
}  // namespace smv::metrics
