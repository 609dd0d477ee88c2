// The etcd client against a real 3-member etcd 3.4 cluster (tests/support/etcd_cluster.h):
// create-if-absent, compare-and-swap under contention, reads at a revision, a killed member,
// a hung member, a cluster without quorum (fail closed, then recover), a watch that outlives
// hung and killed members and expired tokens, and etcd out of space.

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "etcd/kv_client.h"
#include "tests/support/etcd_cluster.h"
#include "tests/support/etcd_security.h"

namespace smv::etcd {
namespace {

using smv::testing::EtcdCluster;
using smv::testing::EtcdTest;
using std::chrono::milliseconds;
using std::chrono::seconds;

TxnResult MustCommit(KvClient& client, const Txn& txn) {
  auto r = client.Commit(txn);
  EXPECT_TRUE(r.ok()) << r.status().message();
  return r.ok() ? *r : TxnResult{};
}

Txn CreateIfAbsent(const std::string& key, const std::string& value) {
  return {.compares = {{.key = key, .target = Compare::Target::kCreateRevision, .revision = 0}},
          .success = {PutOp{key, value}}};
}

class KvClientTest : public EtcdTest {
 protected:
  KvClient Client(milliseconds deadline = milliseconds(10000)) {
    return KvClient({.endpoints = cluster_.endpoints(), .deadline = deadline});
  }
};

TEST_F(KvClientTest, CreateIfAbsentSucceedsOnceAndReadsBackWithItsRevision) {
  KvClient client = Client();
  // A key that is not base64-safe text: the gateway must carry every byte.
  const std::string key = std::string("smv/address/198.18.0.7\0\xff", 25);
  const TxnResult first = MustCommit(client, CreateIfAbsent(key, "web"));
  EXPECT_TRUE(first.succeeded);
  const TxnResult second = MustCommit(client, CreateIfAbsent(key, "db"));
  EXPECT_FALSE(second.succeeded) << "a second create of the same key must lose";

  auto got = client.Get(key);
  ASSERT_TRUE(got.ok()) << got.status().message();
  ASSERT_EQ(got->kvs.size(), 1u);
  EXPECT_EQ(got->kvs[0].key, key);
  EXPECT_EQ(got->kvs[0].value, "web");
  EXPECT_EQ(got->kvs[0].create_revision, first.revision);
  EXPECT_EQ(got->kvs[0].version, 1);
  auto missing = client.Get("smv/address/198.18.0.8");
  ASSERT_TRUE(missing.ok());
  EXPECT_TRUE(missing->kvs.empty());
}

// Eight writers increment one counter with read + compare(mod_revision) + put: a writer whose
// read went stale loses its transaction and reads again, so no increment is ever lost.
TEST_F(KvClientTest, EightWritersWithCompareAndSwapLoseNoIncrement) {
  constexpr int kWriters = 8, kIncrements = 25;
  {
    KvClient setup = Client();
    ASSERT_TRUE(MustCommit(setup, CreateIfAbsent("counter", "0")).succeeded);
  }
  std::atomic<int> conflicts{0}, errors{0};
  std::vector<std::thread> writers;
  for (int w = 0; w < kWriters; ++w) {
    writers.emplace_back([&] {
      KvClient client = Client();
      for (int done = 0; done < kIncrements;) {
        auto now = client.Get("counter");
        if (!now.ok() || now->kvs.size() != 1) {
          ++errors;
          return;
        }
        const KeyValue& kv = now->kvs[0];
        const Txn txn{
            .compares = {{.key = "counter", .target = Compare::Target::kModRevision, .revision = kv.mod_revision}},
            .success = {PutOp{"counter", std::to_string(std::stoi(kv.value) + 1)}}};
        auto r = client.Commit(txn);
        if (!r.ok()) {
          ++errors;
          return;
        }
        if (r->succeeded) {
          ++done;
        } else {
          ++conflicts;
        }
      }
    });
  }
  for (std::thread& t : writers) t.join();
  ASSERT_EQ(errors, 0);
  KvClient client = Client();
  auto counter = client.Get("counter");
  ASSERT_TRUE(counter.ok());
  EXPECT_EQ(counter->kvs.at(0).value, std::to_string(kWriters * kIncrements));
  RecordProperty("conflicts", conflicts.load());
}

TEST_F(KvClientTest, PrefixListingAtARevisionSeesThatRevisionOnly) {
  KvClient client = Client();
  MustCommit(client, {.success = {PutOp{"names/a", "1"}, PutOp{"names/b", "2"}, PutOp{"namez", "x"}}});
  auto before = client.GetPrefix("names/");
  ASSERT_TRUE(before.ok());
  ASSERT_EQ(before->kvs.size(), 2u);
  MustCommit(client, {.success = {PutOp{"names/c", "3"}, DeleteOp{"names/a"}}});

  auto then = client.GetPrefix("names/", 0, before->revision);
  ASSERT_TRUE(then.ok()) << then.status().message();
  ASSERT_EQ(then->kvs.size(), 2u);
  EXPECT_EQ(then->kvs[0].key, "names/a");
  EXPECT_EQ(then->kvs[1].key, "names/b");
  auto now = client.GetPrefix("names/");
  ASSERT_TRUE(now.ok());
  ASSERT_EQ(now->kvs.size(), 2u);
  EXPECT_EQ(now->kvs[0].key, "names/b");
  EXPECT_EQ(now->kvs[1].key, "names/c");
  auto limited = client.GetPrefix("names/", 1);
  ASSERT_TRUE(limited.ok());
  EXPECT_EQ(limited->kvs.size(), 1u);
  EXPECT_TRUE(limited->more);
}

// The member the client talks to dies while a leader stays: the next call goes to another
// member and succeeds, with nothing lost.
TEST_F(KvClientTest, AKilledFollowerIsPassedOverAndNothingIsLost) {
  const int leader = cluster_.Leader();
  ASSERT_GE(leader, 0) << cluster_.Logs();
  const int follower = (leader + 1) % kMembers;
  std::vector<Endpoint> endpoints = cluster_.endpoints();
  std::rotate(endpoints.begin(), endpoints.begin() + follower, endpoints.end());  // the follower first
  KvClient client({.endpoints = endpoints});
  ASSERT_TRUE(MustCommit(client, CreateIfAbsent("before", "1")).succeeded);
  ASSERT_EQ(client.preferred().port, EtcdCluster::ClientPort(follower));
  cluster_.Kill(follower);
  EXPECT_TRUE(MustCommit(client, CreateIfAbsent("after", "2")).succeeded);
  EXPECT_NE(client.preferred().port, EtcdCluster::ClientPort(follower));
  auto both = client.GetPrefix("");
  ASSERT_TRUE(both.ok()) << both.status().message();
  EXPECT_EQ(both->kvs.size(), 2u);
}

// The leader dies under a write. etcd may drop the write with the leader and then answer nothing
// until its own request timeout: the client reports the outcome as unknown (never as a refusal),
// and reading back after the election tells whether the write happened. Either way the key ends
// up written exactly once, with our value.
TEST_F(KvClientTest, AWriteLostWithTheLeaderIsResolvedByReadingBack) {
  const int leader = cluster_.Leader();
  ASSERT_GE(leader, 0) << cluster_.Logs();
  std::vector<Endpoint> endpoints = cluster_.endpoints();
  std::rotate(endpoints.begin(), endpoints.begin() + (leader + 1) % kMembers, endpoints.end());
  KvClient client({.endpoints = endpoints});
  ASSERT_TRUE(MustCommit(client, CreateIfAbsent("warm", "1")).succeeded);
  // Killed just before the write: the other members learn of it only at the election timeout, so
  // the write goes to a leader that is gone.
  cluster_.Kill(leader);
  bool written = false;
  int unknown_outcomes = 0;
  for (int attempt = 0; attempt < 5 && !written; ++attempt) {
    auto r = client.Commit(CreateIfAbsent("web", "198.18.0.9"));
    if (r.ok()) {
      written = true;  // succeeded, or lost to an earlier attempt of ours: the read below tells
    } else {
      ASSERT_EQ(r.status().code(), Code::kUnavailable) << r.status().message();
      ++unknown_outcomes;
      auto back = client.Get("web");
      written = back.ok() && back->kvs.size() == 1;
    }
  }
  RecordProperty("unknown_outcomes", unknown_outcomes);
  ASSERT_TRUE(written);
  auto web = client.Get("web");
  ASSERT_TRUE(web.ok()) << web.status().message();
  ASSERT_EQ(web->kvs.size(), 1u);
  EXPECT_EQ(web->kvs[0].value, "198.18.0.9");
  EXPECT_EQ(web->kvs[0].version, 1) << "written once";
}

// Two of three members down: no quorum. A write must fail, within the 10 s the fleet promises,
// as Unavailable naming the shared store; once the members are back, writes work again.
TEST_F(KvClientTest, WithoutQuorumWritesFailClosedWithinTheDeadlineAndRecover) {
  KvClient client = Client();
  ASSERT_TRUE(MustCommit(client, CreateIfAbsent("kept", "1")).succeeded);
  cluster_.Kill(1);
  cluster_.Kill(2);
  const auto started = std::chrono::steady_clock::now();
  auto refused = client.Commit(CreateIfAbsent("lost", "2"));
  const auto took = std::chrono::steady_clock::now() - started;
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), Code::kUnavailable);
  // The client says what failed (etcd), not what it was for: the IPAM adds that.
  EXPECT_EQ(refused.status().message().rfind("etcd: ", 0), 0u) << refused.status().message();
  EXPECT_LT(took, seconds(11)) << "the deadline is 10 s";

  cluster_.Start(1);
  cluster_.Start(2);
  ASSERT_TRUE(cluster_.Healthy(0, seconds(30))) << cluster_.Logs();
  // The refused write's outcome was unknown to the client; reading back tells (never guess).
  auto lost = client.Get("lost");
  ASSERT_TRUE(lost.ok()) << lost.status().message();
  const bool applied = lost->kvs.size() == 1;
  EXPECT_EQ(MustCommit(client, CreateIfAbsent("lost", "2")).succeeded, !applied);
  auto kept = client.Get("kept");
  ASSERT_TRUE(kept.ok());
  EXPECT_EQ(kept->kvs.size(), 1u);
}

TEST_F(KvClientTest, AWatchSeesEveryChangeUnderItsPrefixInOrderAndSaysWhenItsStartWasCompacted) {
  KvClient writer = Client();
  const int64_t first = MustCommit(writer, CreateIfAbsent("/w/a", "1")).revision;
  MustCommit(writer, CreateIfAbsent("/elsewhere", "x"));
  MustCommit(writer, CreateIfAbsent("/w/b", "2"));
  MustCommit(writer, {.success = {DeleteOp{"/w/a"}}});

  KvClient watcher = Client();
  std::vector<WatchEvent> seen;
  Status ended = watcher.Watch("/w/", first, [&](std::vector<WatchEvent> batch) {
    for (WatchEvent& e : batch) seen.push_back(std::move(e));
    return seen.size() < 3;
  });
  ASSERT_TRUE(ended.ok()) << ended.message();
  ASSERT_EQ(seen.size(), 3u);
  EXPECT_EQ(seen[0].kv.key, "/w/a");
  EXPECT_EQ(seen[0].kv.value, "1");
  EXPECT_FALSE(seen[0].deleted);
  EXPECT_EQ(seen[0].kv.mod_revision, first);
  EXPECT_EQ(seen[1].kv.key, "/w/b");
  EXPECT_EQ(seen[1].kv.mod_revision, first + 2) << "the write outside the prefix is not seen";
  EXPECT_EQ(seen[2].kv.key, "/w/a");
  EXPECT_TRUE(seen[2].deleted);
  EXPECT_EQ(seen[2].kv.mod_revision, first + 3);

  // Changes made while the watch runs arrive too; StopWatch from another thread ends it.
  std::atomic<int> live = 0;
  std::thread follower([&] {
    ended = watcher.Watch("/w/", first + 4, [&](std::vector<WatchEvent> batch) {
      live += static_cast<int>(batch.size());
      return true;
    });
  });
  const auto until = std::chrono::steady_clock::now() + seconds(10);
  for (int i = 0; live < 1 && std::chrono::steady_clock::now() < until; ++i) {
    MustCommit(writer, {.success = {PutOp{"/w/live", std::to_string(i)}}});
    std::this_thread::sleep_for(milliseconds(50));
  }
  EXPECT_GE(live.load(), 1);
  watcher.StopWatch();
  follower.join();
  EXPECT_TRUE(ended.ok()) << ended.message();

  // History compacted past the start: the watch says so (list again), it never skips changes.
  auto now = writer.Get("/w/b");
  ASSERT_TRUE(now.ok()) << now.status().message();
  ASSERT_TRUE(cluster_.Compact(now->revision));
  KvClient late = Client();
  ended = late.Watch("/w/", first, [](std::vector<WatchEvent>) { return true; });
  EXPECT_EQ(ended.code(), Code::kAborted) << ended.message();
  EXPECT_NE(ended.message().find("compacted"), std::string::npos) << ended.message();
}

int MemberOf(const Endpoint& e) { return (e.port - EtcdCluster::kFirstPort) / 2; }

// The member the client used last hangs (SIGSTOP) while the other two keep a quorum: it costs
// one attempt (request_timeout), after which every call goes to a live member. A write it took
// has an unknown outcome; as the store does, the writer reads back before it writes again.
TEST_F(KvClientTest, AHungMemberCostsOneAttemptAndCallsGoOnWithP99UnderTwoSeconds) {
  const int leader = cluster_.Leader();
  ASSERT_GE(leader, 0) << cluster_.Logs();
  const int follower = (leader + 1) % kMembers;
  std::vector<Endpoint> endpoints = cluster_.endpoints();
  std::rotate(endpoints.begin(), endpoints.begin() + follower, endpoints.end());
  KvClient client({.endpoints = endpoints});
  ASSERT_TRUE(MustCommit(client, CreateIfAbsent("warm", "1")).succeeded);
  ASSERT_EQ(MemberOf(client.preferred()), follower);
  cluster_.Pause(follower);
  std::vector<milliseconds> took;
  int unknown_outcomes = 0;
  const auto timed = [&took](auto call) {
    const auto started = std::chrono::steady_clock::now();
    auto result = call();
    took.push_back(std::chrono::duration_cast<milliseconds>(std::chrono::steady_clock::now() - started));
    return result;
  };
  for (int i = 0; i < 200; ++i) {
    const std::string key = "hung/" + std::to_string(i);
    auto put = timed([&] {
      auto r = client.Commit(CreateIfAbsent(key, "v"));
      if (r.ok() || r.status().code() != Code::kUnavailable) return r;
      ++unknown_outcomes;  // read back, then write again only if it did not apply
      auto back = client.Get(key);
      if (back.ok() && back->kvs.size() == 1) return Result<TxnResult>(TxnResult{.succeeded = true});
      return client.Commit(CreateIfAbsent(key, "v"));
    });
    ASSERT_TRUE(put.ok()) << "write " << i << ": " << put.status().message();
    auto got = timed([&] { return client.Get(key); });
    ASSERT_TRUE(got.ok()) << "read " << i << ": " << got.status().message();
    ASSERT_EQ(got->kvs.size(), 1u) << key;
  }
  cluster_.Resume(follower);
  std::sort(took.begin(), took.end());
  const milliseconds p99 = took[took.size() * 99 / 100], slowest = took.back();
  std::printf("hung member: %zu calls, p99 %lld ms, slowest %lld ms, %d unknown outcome(s)\n", took.size(),
              static_cast<long long>(p99.count()), static_cast<long long>(slowest.count()), unknown_outcomes);
  RecordProperty("p99_ms", static_cast<int>(p99.count()));
  RecordProperty("slowest_ms", static_cast<int>(slowest.count()));
  EXPECT_LT(p99, milliseconds(2000));
  EXPECT_LT(slowest, milliseconds(5000)) << "a hung member costs one attempt, not the call's deadline";
  EXPECT_LE(unknown_outcomes, 1) << "only the write in flight when it hung";
  EXPECT_NE(MemberOf(client.preferred()), follower);
}

// Simple auth tokens that expire after a second of disuse on each member (as a quiet watch's
// token does after etcd's default 300 s), and members that hang or restart under the watch.
class EtcdWatchAuthTest : public EtcdTest {
 protected:
  void ConfigureCluster() override { cluster_.AddFlags({"--auth-token-ttl=1"}); }
  void SetUp() override {
    EtcdTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    ASSERT_NO_FATAL_FAILURE(smv::testing::EnableEtcdAuth(cluster_, "smv", "smv-secret", "/smv-test/"));
  }
  ClientOptions Options(int first_member) {
    std::vector<Endpoint> endpoints = cluster_.endpoints();
    std::rotate(endpoints.begin(), endpoints.begin() + first_member, endpoints.end());
    return {.endpoints = endpoints, .user = "smv", .password = "smv-secret", .deadline = std::chrono::seconds(5)};
  }
};

// The watch is followed as the store's mirror follows it (watch again from the next revision when
// it ends). It keeps delivering when its member hangs (the check notices and the watch moves on,
// where its token has expired: renewed) and when its next member is killed and restarted.
// Follows a watch as the store's mirror does: when it ends, it watches again from the revision
// after the last change it saw.
class WatchFollower {
 public:
  WatchFollower(KvClient& watcher, std::string prefix, int64_t from)
      : watcher_(watcher), prefix_(std::move(prefix)), next_(from), thread_([this] { Follow(); }) {}
  ~WatchFollower() {
    done_ = true;
    watcher_.StopWatch();
    thread_.join();
    std::printf("the watch ended %zu time(s) on the way:\n", ends_.size());
    for (const std::string& e : ends_) std::printf("  %s\n", e.c_str());
  }
  // True once a change of `key` arrived (within 20 s).
  bool Sees(const std::string& key) {
    for (const auto until = std::chrono::steady_clock::now() + seconds(20); std::chrono::steady_clock::now() < until;) {
      {
        std::scoped_lock lock(mu_);
        if (seen_.contains(key)) return true;
      }
      std::this_thread::sleep_for(milliseconds(50));
    }
    return false;
  }
  int member() {  // the member that delivered the last change
    std::scoped_lock lock(mu_);
    return member_;
  }

 private:
  void Follow() {
    while (!done_) {
      int64_t from = 0;
      {
        std::scoped_lock lock(mu_);
        from = next_;
      }
      Status ended = watcher_.Watch(prefix_, from, [&](std::vector<WatchEvent> batch) {
        std::scoped_lock lock(mu_);
        for (const WatchEvent& e : batch) {
          seen_.insert(e.kv.key);
          next_ = std::max(next_, e.kv.mod_revision + 1);
        }
        member_ = MemberOf(watcher_.preferred());
        return true;
      });
      if (ended.ok()) continue;
      std::scoped_lock lock(mu_);
      ends_.push_back(ended.message());
      std::this_thread::sleep_for(milliseconds(200));
    }
  }

  KvClient& watcher_;
  const std::string prefix_;
  std::mutex mu_;
  std::set<std::string> seen_;
  std::vector<std::string> ends_;
  int64_t next_;
  int member_ = -1;
  std::atomic<bool> done_ = false;
  std::thread thread_;
};

TEST_F(EtcdWatchAuthTest, AWatchKeepsDeliveringThroughAHungMemberAKilledOneAndExpiredTokens) {
  KvClient watcher(Options(0));
  KvClient writer(Options(1));
  const auto write = [&writer](const std::string& key) {
    for (int attempt = 0; attempt < 5; ++attempt) {
      if (writer.Commit({.success = {PutOp{key, "1"}}}).ok()) return true;  // a put again is harmless
    }
    return false;
  };
  ASSERT_TRUE(write("/smv-test/w/start"));
  auto start = writer.Get("/smv-test/w/start");
  ASSERT_TRUE(start.ok()) << start.status().message();
  WatchFollower follower(watcher, "/smv-test/w/", start->revision + 1);
  ASSERT_TRUE(write("/smv-test/w/a"));
  EXPECT_TRUE(follower.Sees("/smv-test/w/a"));
  ASSERT_EQ(follower.member(), 0);
  cluster_.Pause(0);                        // the watched member hangs: its stream just goes quiet
  std::this_thread::sleep_for(seconds(2));  // the token expires on the other members
  EXPECT_TRUE(write("/smv-test/w/hung"));
  EXPECT_TRUE(follower.Sees("/smv-test/w/hung")) << "the watch stayed on the hung member";
  cluster_.Resume(0);
  const int watched = follower.member();
  ASSERT_NE(watched, 0);
  std::this_thread::sleep_for(seconds(2));
  cluster_.Kill(watched);  // the stream breaks; the token has expired on the next member
  EXPECT_TRUE(write("/smv-test/w/killed"));
  EXPECT_TRUE(follower.Sees("/smv-test/w/killed")) << "the watch did not come back after its member died";
  cluster_.Start(watched);  // it knows no token any more
  ASSERT_TRUE(cluster_.Healthy(watched, seconds(30))) << cluster_.Logs();
  EXPECT_TRUE(write("/smv-test/w/restarted"));
  EXPECT_TRUE(follower.Sees("/smv-test/w/restarted"));
}

// etcd with a small --quota-backend-bytes fills up and raises its NOSPACE alarm: writes are
// kResourceExhausted naming the alarm and the fix, reads still work.
class EtcdNoSpaceTest : public EtcdTest {
 protected:
  void ConfigureCluster() override { cluster_.AddFlags({"--quota-backend-bytes=" + std::to_string(1 << 20)}); }
};

TEST_F(EtcdNoSpaceTest, AFullEtcdIsResourceExhaustedNamingTheAlarmAndTheFix) {
  KvClient client({.endpoints = cluster_.endpoints()});
  const std::string big(64 << 10, 'x');
  Result<TxnResult> put = TxnResult{};
  int written = 0;
  for (; written < 100 && put.ok(); ++written) {
    put = client.Commit({.success = {PutOp{"/full/" + std::to_string(written), big}}});
  }
  ASSERT_FALSE(put.ok()) << "etcd took " << written << " x 64 KiB with a 1 MiB quota";
  EXPECT_EQ(put.status().code(), Code::kResourceExhausted) << put.status().message();
  for (const char* part : {"NOSPACE", "--quota-backend-bytes", "compact", "defrag", "etcdctl alarm disarm"}) {
    EXPECT_NE(put.status().message().find(part), std::string::npos) << part << ": " << put.status().message();
  }
  auto again = client.Commit(CreateIfAbsent("/small", "1"));
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.status().code(), Code::kResourceExhausted) << again.status().message();
  auto read = client.Get("/full/0");
  ASSERT_TRUE(read.ok()) << read.status().message();
  EXPECT_EQ(read->kvs.size(), 1u);
}

}  // namespace
}  // namespace smv::etcd
