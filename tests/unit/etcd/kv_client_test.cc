// The etcd client's parts that need no cluster: the --store address, prefix ranges, the error
// when no member answers, and how answers are classified and members passed over, against a
// member that takes connections but never answers (a hung one) and a stand-in that answers as
// etcd's gateway does (tests/etcd has the rest, against a real cluster).

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <exception>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <httplib.h>

#include "etcd/kv_client.h"
#include "etcd/watch_stream.h"

namespace smv::etcd {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// A member that is hung (SIGSTOP): the kernel completes its connections and takes requests into
// the socket buffer, and nothing ever answers.
class HungMember {
 public:
  HungMember() {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{.sin_family = AF_INET, .sin_port = 0, .sin_addr = {htonl(INADDR_LOOPBACK)}};
    EXPECT_EQ(bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    EXPECT_EQ(listen(fd_, 16), 0);
    socklen_t len = sizeof addr;
    getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
  }
  ~HungMember() { close(fd_); }
  Endpoint endpoint() const { return {.host = "127.0.0.1", .port = port_}; }

 private:
  int fd_ = -1;
  int port_ = 0;
};

// A member whose listen queue is full: the kernel drops new connections' SYNs, so a connect
// neither completes nor is refused; it times out (as through a partition that drops packets).
class FullMember {
 public:
  FullMember() {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{.sin_family = AF_INET, .sin_port = 0, .sin_addr = {htonl(INADDR_LOOPBACK)}};
    EXPECT_EQ(bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    EXPECT_EQ(listen(fd_, 0), 0);
    socklen_t len = sizeof addr;
    getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    // Fill the queue: connections that are never accepted.
    for (int i = 0; i < 4; ++i) {
      const int c = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
      connect(c, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
      fillers_.push_back(c);
    }
  }
  ~FullMember() {
    for (int c : fillers_) close(c);
    close(fd_);
  }
  Endpoint endpoint() const { return {.host = "127.0.0.1", .port = port_}; }

 private:
  int fd_ = -1;
  int port_ = 0;
  std::vector<int> fillers_;
};

// Answers POSTs as etcd's gateway would: `status` and `body` for every path; counts requests.
class AnsweringMember {
 public:
  AnsweringMember(int status, std::string body, int port = 0) {
    server_.Post(".*", [this, status, body](const httplib::Request& req, httplib::Response& res) {
      if (req.path == "/v3/kv/txn") ++txns;
      res.status = status;
      res.set_content(body, "application/json");
    });
    port_ = port;
    if (port == 0) {
      port_ = server_.bind_to_any_port("127.0.0.1");
    } else {
      EXPECT_TRUE(server_.bind_to_port("127.0.0.1", port));
    }
    thread_ = std::thread([this] { server_.listen_after_bind(); });
  }
  ~AnsweringMember() {
    server_.stop();
    thread_.join();
  }
  Endpoint endpoint() const { return {.host = "127.0.0.1", .port = port_}; }
  std::atomic<int> txns = 0;

 private:
  httplib::Server server_;
  int port_ = 0;
  std::thread thread_;
};

constexpr const char* kEmptyRange = R"({"header":{"revision":"7"},"kvs":[]})";

TEST(EtcdEndpointsTest, ParsesEveryMember) {
  auto e = ParseEndpoints("etcd://10.0.0.1:2379,etcd-b:2381,[2001:db8::1]:2379", "--store");
  ASSERT_TRUE(e.ok()) << e.status().message();
  ASSERT_EQ(e->size(), 3u);
  EXPECT_EQ((*e)[0], (Endpoint{.host = "10.0.0.1", .port = 2379}));
  EXPECT_EQ((*e)[1], (Endpoint{.host = "etcd-b", .port = 2381}));
  EXPECT_EQ((*e)[2], (Endpoint{.host = "[2001:db8::1]", .port = 2379}));
}

TEST(EtcdEndpointsTest, BadAddressesAreRefusedNamingTheOptionAndTheValue) {
  for (const char* bad : {"lmdb", "http://h:2379", "etcd://", "etcd://h", "etcd://h:0", "etcd://h:65536",
                          "etcd://h:23x", "etcd://h:2379,", "etcd://:2379"}) {
    auto e = ParseEndpoints(bad, "--store");
    ASSERT_FALSE(e.ok()) << bad;
    EXPECT_EQ(e.status().code(), Code::kInvalidArgument);
    EXPECT_NE(e.status().message().find(std::string("--store \"") + bad + "\""), std::string::npos)
        << e.status().message();
    EXPECT_NE(e.status().message().find("etcd://HOST:PORT"), std::string::npos) << e.status().message();
  }
}

TEST(EtcdEndpointsTest, PrefixEndIsThePrefixWithItsLastByteIncremented) {
  EXPECT_EQ(PrefixEnd("smv/names/"), "smv/names0");
  EXPECT_EQ(PrefixEnd(std::string("a\xff", 2)), "b");
  EXPECT_EQ(PrefixEnd(""), std::string(1, '\0'));
}

TEST(EtcdClientTest, NoMemberAnsweringIsUnavailableAndNamesTheMember) {
  KvClient client({.endpoints = {{.host = "127.0.0.1", .port = 1}}, .deadline = std::chrono::milliseconds(300)});
  auto r = client.Get("x");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kUnavailable);
  // "etcd: DETAIL": the client knows etcd, not what it stores there (the IPAM says that).
  EXPECT_EQ(r.status().message().rfind("etcd: 127.0.0.1:1", 0), 0u) << r.status().message();
  EXPECT_EQ(r.status().message().find("address store"), std::string::npos) << r.status().message();
}

// A host that reaches no member at all (cut off, or the cluster is down) is refused after a
// short grace (3 s), not after the call's deadline: the next call asks again.
TEST(EtcdClientTest, NoMemberReachableForTheGraceEndsTheCall) {
  KvClient client({.endpoints = {{.host = "127.0.0.1", .port = 1}, {.host = "127.0.0.1", .port = 2}},
                   .deadline = std::chrono::seconds(600)});
  const auto started = Clock::now();
  auto r = client.Get("x");
  EXPECT_LT(Clock::now() - started, std::chrono::seconds(30)) << "the grace, not the deadline";
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kUnavailable);
  EXPECT_NE(r.status().message().find("; no member reachable"), std::string::npos) << r.status().message();
}

// A member that is restarting (connections refused for a second, as a one-member cluster's
// only member during `systemctl restart etcd`) is waited for within the grace: no refusal.
TEST(EtcdClientTest, AMemberRestartingWithinTheGraceIsWaitedFor) {
  int port = 0;
  {
    HungMember taken;  // a free port, given back at once
    port = taken.endpoint().port;
  }
  KvClient client({.endpoints = {{.host = "127.0.0.1", .port = port}}, .deadline = std::chrono::seconds(10)});
  std::unique_ptr<AnsweringMember> back;
  std::thread restart([&] {
    std::this_thread::sleep_for(milliseconds(1000));
    back = std::make_unique<AnsweringMember>(200, kEmptyRange, port);
  });
  auto got = client.Get("x");
  restart.join();
  ASSERT_TRUE(got.ok()) << got.status().message();
  EXPECT_EQ(got->revision, 7);
}

// A member that answers (503: no leader, as during an election) keeps the call going until its
// deadline, next to one that cannot be reached.
TEST(EtcdClientTest, AMemberThatAnswersKeepsTheCallGoingUntilItsDeadline) {
  AnsweringMember electing(503, R"({"error":"etcdserver: no leader","code":14})");
  KvClient client({.endpoints = {{.host = "127.0.0.1", .port = 1}, electing.endpoint()},
                   .deadline = std::chrono::milliseconds(800)});
  auto r = client.Get("x");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message().find("no member reachable"), std::string::npos) << r.status().message();
}

// A member that cannot be connected to within connect_timeout is unreachable; a connect that
// only the call's own deadline cut short is not taken as a sign that none is reachable.
TEST(EtcdClientTest, OnlyAConnectGivenItsFullTimeCountsAsUnreachable) {
  FullMember full;
  KvClient timed_out(
      {.endpoints = {full.endpoint()}, .deadline = std::chrono::seconds(600), .connect_timeout = milliseconds(200)});
  const auto started = Clock::now();
  auto r = timed_out.Get("x");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("; no member reachable"), std::string::npos) << r.status().message();
  EXPECT_LT(Clock::now() - started, std::chrono::seconds(30)) << "the grace, not the deadline";

  KvClient cut_short(
      {.endpoints = {full.endpoint()}, .deadline = milliseconds(300), .connect_timeout = milliseconds(1000)});
  r = cut_short.Get("x");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kUnavailable);
  EXPECT_EQ(r.status().message().find("no member reachable"), std::string::npos) << r.status().message();
}

// A hung member costs one attempt (request_timeout, 1.5 s), not the call's 10 s deadline, and
// the calls after it go to the member that answered.
TEST(EtcdClientTest, AHungMemberCostsOneAttemptAndLaterCallsGoToTheNextMember) {
  HungMember hung;
  AnsweringMember answering(200, kEmptyRange);
  KvClient client({.endpoints = {hung.endpoint(), answering.endpoint()}});
  const auto started = Clock::now();
  auto got = client.Get("x");
  const auto took = Clock::now() - started;
  ASSERT_TRUE(got.ok()) << got.status().message();
  EXPECT_EQ(got->revision, 7);
  EXPECT_LT(took, milliseconds(3000)) << "one attempt, not the call's deadline";
  EXPECT_EQ(client.preferred(), answering.endpoint());
  const auto again = Clock::now();
  ASSERT_TRUE(client.Get("x").ok());
  EXPECT_LT(Clock::now() - again, milliseconds(1000)) << "the hung member is not asked first again";
}

// A transaction the hung member took is never sent again (its outcome is unknown), it is reported
// as such within one attempt, and the read-back that settles it goes to the next member.
TEST(EtcdClientTest, ATransactionAHungMemberTookIsReportedUnknownAndNotSentAgain) {
  HungMember hung;
  AnsweringMember answering(200, R"({"header":{"revision":"8"},"succeeded":true})");
  KvClient client({.endpoints = {hung.endpoint(), answering.endpoint()}});
  const auto started = Clock::now();
  auto put = client.Commit({.success = {PutOp{"k", "v"}}});
  const auto took = Clock::now() - started;
  ASSERT_FALSE(put.ok());
  EXPECT_EQ(put.status().code(), Code::kUnavailable);
  EXPECT_NE(put.status().message().find("its outcome is unknown"), std::string::npos) << put.status().message();
  EXPECT_LT(took, milliseconds(3000));
  EXPECT_EQ(answering.txns, 0) << "a transaction that went out is never sent again blindly";
  EXPECT_EQ(client.preferred(), answering.endpoint());
}

// etcd's NOSPACE alarm (the gateway answers 429 with gRPC code 8) names the alarm and the fix, in
// every call.
TEST(EtcdClientTest, OutOfSpaceIsResourceExhaustedNamingTheAlarmAndTheFix) {
  AnsweringMember full(429, R"({"error":"etcdserver: mvcc: database space exceeded",)"
                            R"("message":"etcdserver: mvcc: database space exceeded","code":8})");
  KvClient client({.endpoints = {full.endpoint()}});
  auto put = client.Commit({.success = {PutOp{"k", "v"}}});
  ASSERT_FALSE(put.ok());
  EXPECT_EQ(put.status().code(), Code::kResourceExhausted) << put.status().message();
  auto lease = client.GrantLease(std::chrono::seconds(10));
  ASSERT_FALSE(lease.ok());
  EXPECT_EQ(lease.status().code(), Code::kResourceExhausted) << lease.status().message();
  for (const char* part : {"out of space", "NOSPACE", "--quota-backend-bytes", "defrag", "etcdctl alarm disarm"}) {
    EXPECT_NE(put.status().message().find(part), std::string::npos) << part << ": " << put.status().message();
  }
}

// Answers etcd should never send: each is a clear error (kInternal: the answer cannot be read,
// and asking again would get the same one), never an exception that would end the daemon's
// load, read or watch thread.
Status StatusOf(const Status& status) { return status; }
template <typename T>
Status StatusOf(const Result<T>& result) {
  return result.status();
}

template <typename CallEtcd>
Status WithoutException(CallEtcd call) {
  try {
    return StatusOf(call());
  } catch (const std::exception& e) {
    ADD_FAILURE() << "threw: " << e.what();
  }
  return Internal("threw");
}

struct MistypedAnswer {
  const char* call;
  const char* body;
  const char* named;  // what the error names: the field or the fault
};

Status CallOnce(KvClient& client, std::string_view call) {
  if (call == "Get") return WithoutException([&] { return client.Get("k"); });
  if (call == "GetPrefix") return WithoutException([&] { return client.GetPrefix("p/"); });
  if (call == "Commit") return WithoutException([&] { return client.Commit({.success = {PutOp{"k", "v"}}}); });
  if (call == "GrantLease") return WithoutException([&] { return client.GrantLease(std::chrono::seconds(10)); });
  if (call == "KeepLeaseAlive") return WithoutException([&] { return client.KeepLeaseAlive(7); });
  if (call == "LeaseTimeToLive") return WithoutException([&] { return client.LeaseTimeToLive(7); });
  return Internal(fmt::format("no call {}", call));
}

TEST(EtcdAnswerTest, AMistypedOrGarbledAnswerIsInternalNotAnException) {
  const MistypedAnswer answers[] = {
      {"Get", R"({"header":{"revision":"7"},"kvs":[{"key":5}]})", "key"},
      {"Get", R"({"header":{"revision":"7"},"kvs":"none"})", "kvs"},
      {"Get", R"({"header":{"revision":"7"},"kvs":["a"]})", "kvs"},
      {"Get", R"({"header":{"revision":"7"},"kvs":[{"key":"a2V5","create_revision":"x7"}]})", "create_revision"},
      {"Get", R"({"header":"7","kvs":[]})", "header"},
      {"Get", R"({"header":{"revision":"7"},"kvs":[{"key":"%%%%"}]})", "base64"},
      {"Get", "<html>proxy error</html>", "not JSON"},
      {"Get", "[1,2]", "not JSON"},
      {"GetPrefix", R"({"header":{"revision":"7"},"more":"yes"})", "more"},
      {"GetPrefix", R"({"header":{"revision":true}})", "revision"},
      {"Commit", R"({"header":{"revision":"8"},"succeeded":"yes"})", "succeeded"},
      {"Commit", R"({"header":{"revision":[8]},"succeeded":true})", "revision"},
      {"Commit", R"({"succeeded":tru)", "not JSON"},
      {"GrantLease", R"({"ID":{"id":1},"TTL":"10"})", "ID"},
      {"GrantLease", R"({"ID":"12ab","TTL":"10"})", "ID"},
      {"KeepLeaseAlive", R"({"result":"alive"})", "result"},
      {"KeepLeaseAlive", R"({"result":{"TTL":"long"}})", "TTL"},
      {"LeaseTimeToLive", R"({"TTL":"soon"})", "TTL"},
      {"LeaseTimeToLive", R"({"TTL":1.5})", "TTL"},
  };
  for (const MistypedAnswer& answer : answers) {
    AnsweringMember member(200, answer.body);
    KvClient client({.endpoints = {member.endpoint()}, .deadline = milliseconds(2000)});
    const Status status = CallOnce(client, answer.call);
    EXPECT_EQ(status.code(), Code::kInternal) << answer.call << " " << answer.body << ": " << status.message();
    EXPECT_NE(status.message().find(answer.named), std::string::npos)
        << answer.call << " " << answer.body << ": " << status.message();
    EXPECT_EQ(member.txns, answer.call == std::string_view("Commit") ? 1 : 0) << "an answer is never asked again";
  }
}

// The watch stream: a mistyped line ends the watch with kInternal (the watcher's thread goes on).
TEST(EtcdAnswerTest, AMistypedWatchEventEndsTheWatchWithInternalNotAnException) {
  for (const char* line : {R"({"result":{"events":[{"kv":"garbled"}]}})",
                           R"({"result":{"events":[{"type":"PUT","kv":{"key":"a2V5","mod_revision":"x"}}]}})",
                           R"({"result":{"events":["PUT"]}})", R"({"result":{"events":{"kv":{}}}})",
                           R"({"result":{"canceled":"yes"}})", R"({"result":{"compact_revision":{}}})",
                           R"({"result":{"header":{"revision":"9"},"events":[{"type":7,"kv":{"key":"a2V5"}}]}})"}) {
    AnsweringMember member(200, std::string(line) + "\n");
    KvClient client({.endpoints = {member.endpoint()}, .deadline = milliseconds(2000)});
    int batches = 0;
    const Status status = WithoutException(
        [&] { return client.Watch("p/", 1, [&](std::vector<WatchEvent>) { return ++batches < 10; }); });
    EXPECT_EQ(status.code(), Code::kInternal) << line << ": " << status.message();
    EXPECT_EQ(batches, 0) << line;
  }
}

// The watch stream arrives in pieces that cut lines anywhere: the line reader hands the decoder
// whole lines only, and each line's changes reach the receiver as one batch.
TEST(EtcdWatchStreamTest, LinesCutAnywhereAreDecodedWhole) {
  const std::string put = R"({"result":{"events":[{"kv":{"key":"cC9h","value":"MQ==","mod_revision":"5"}}]}})";
  const std::string del = R"({"result":{"events":[{"type":"DELETE","kv":{"key":"cC9i","mod_revision":"6"}}]}})";
  const std::string created = R"({"result":{"header":{"revision":"4"},"created":true}})";
  const std::string stream = created + "\n" + put + "\n" + del + "\n";
  for (size_t cut = 1; cut < stream.size(); ++cut) {
    std::vector<std::vector<WatchEvent>> batches;
    const WatchReceiver receive = [&](std::vector<WatchEvent> batch) {
      batches.push_back(std::move(batch));
      return true;
    };
    WatchStream watch("m:1", 4, receive);
    ASSERT_TRUE(watch.Feed(stream.data(), cut));
    ASSERT_TRUE(watch.Feed(stream.data() + cut, stream.size() - cut));
    ASSERT_EQ(batches.size(), 2u) << "cut at " << cut;
    EXPECT_EQ(batches[0][0].kv.key, "p/a");
    EXPECT_EQ(batches[0][0].kv.value, "1");
    EXPECT_EQ(batches[0][0].kv.mod_revision, 5);
    EXPECT_FALSE(batches[0][0].deleted);
    EXPECT_EQ(batches[1][0].kv.key, "p/b");
    EXPECT_TRUE(batches[1][0].deleted);
    EXPECT_TRUE(watch.delivered());
  }
}

TEST(EtcdWatchStreamTest, EachLineSaysWhetherTheWatchGoesOn) {
  EXPECT_EQ(DecodeWatchLine(R"({"result":{"created":true}})", "m:1", 3).kind, WatchLine::Kind::kNothing);
  const WatchLine compacted = DecodeWatchLine(R"({"result":{"compact_revision":"9"}})", "m:1", 3);
  EXPECT_EQ(compacted.end.code(), Code::kAborted) << compacted.end.message();
  const WatchLine refused =
      DecodeWatchLine(R"({"result":{"canceled":true,"cancel_reason":"rpc error: code = Unauthenticated"}})", "m:1", 3);
  EXPECT_TRUE(refused.token_refused);
  EXPECT_EQ(refused.end.code(), Code::kPermissionDenied);
  const WatchLine broken = DecodeWatchLine(R"({"error":{"grpc_code":14}})", "m:1", 3);
  EXPECT_EQ(broken.end.code(), Code::kUnavailable) << broken.end.message();
  EXPECT_EQ(DecodeWatchLine("garbage", "m:1", 3).end.code(), Code::kUnavailable);
}

}  // namespace
}  // namespace smv::etcd
