// Hostile request bodies: nesting bounded before parsing (json_depth.h), and bodies read with a
// bound however they are framed (http_body.h).

#include <httplib.h>

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <random>

#include "daemon/api/http_body.h"
#include "daemon/api/json_depth.h"
#include "daemon/api/plugin_api.h"
#include "ipam/ipam_service.h"
#include "tests/support/fake_link_ops.h"
#include "tests/support/memory_stores.h"

namespace smv::api {
namespace {

using nlohmann::json;

std::string Nested(size_t levels, const std::string& inner = "") {
  return "{\"a\":" + std::string(levels - 1, '[') + inner + std::string(levels - 1, ']') + "}";
}

TEST(JsonDepthTest, SixtyFourLevelsPassAndSixtyFiveAreRefusedNamingTheLimit) {
  EXPECT_TRUE(CheckJsonDepth(Nested(64)).ok());
  const Status deep = CheckJsonDepth(Nested(65));
  ASSERT_FALSE(deep.ok());
  EXPECT_EQ(deep.code(), Code::kInvalidArgument);
  EXPECT_NE(deep.message().find("more than 64 levels deep, the limit"), std::string::npos) << deep.message();
  EXPECT_TRUE(CheckJsonDepth("", 0).ok());
  EXPECT_FALSE(CheckJsonDepth("{}", 0).ok());
  EXPECT_TRUE(CheckJsonDepth(R"({"a":[1,{"b":[]}],"c":{}})", 4).ok());
  EXPECT_FALSE(CheckJsonDepth(R"({"a":[1,{"b":[]}],"c":{}})", 3).ok());
}

TEST(JsonDepthTest, BracketsInsideStringsAndEscapesAreNotCounted) {
  EXPECT_TRUE(CheckJsonDepth("{\"a\":\"" + std::string(1000, '[') + "\"}").ok());
  // An escaped quote does not end the string, so the brackets after it are still inside it.
  EXPECT_TRUE(CheckJsonDepth("{\"a\":\"\\\"" + std::string(1000, '{') + "\"}").ok());
  // An escaped backslash does not escape the quote after it: the brackets that follow count.
  EXPECT_FALSE(CheckJsonDepth("{\"a\":\"\\\\\"," + std::string(100, '[')).ok());
  // Closers outside any array never make room for more depth.
  EXPECT_FALSE(CheckJsonDepth(std::string(10, ']') + std::string(65, '[')).ok());
}

TEST(JsonDepthTest, TheTwoHundredThousandLevelBodyIsRefusedAtTheLimit) {
  const Status deep = CheckJsonDepth(Nested(200000));
  ASSERT_FALSE(deep.ok());
  EXPECT_NE(deep.message().find("at byte 68"), std::string::npos) << deep.message();  // 4 + 64 brackets in
}

// A random JSON value at most `levels` deep, its strings full of brackets, quotes and escapes.
json RandomValue(std::mt19937& rng, int levels) {
  const auto text = [&rng] {
    std::string s;
    for (auto n = rng() % 8; n > 0; --n) s.push_back("[]{}\"\\a,:"[rng() % 9]);
    return s;
  };
  // Containers more often than not, so that values cross the limit often enough.
  switch (levels == 0 ? rng() % 3 : rng() % 7) {
    case 0: return static_cast<int>(rng() % 100);
    case 1: return text();
    case 2: return nullptr;
    case 3:
    case 4: {
      json array = json::array();
      for (auto n = rng() % 3; n > 0; --n) array.push_back(RandomValue(rng, levels - 1));
      return array;
    }
    default: {
      json object = json::object();
      for (auto n = 1 + rng() % 2; n > 0; --n) object[text()] = RandomValue(rng, levels - 1);
      return object;
    }
  }
}

size_t Depth(const json& value) {
  size_t deepest = 0;
  if (value.is_structured()) {
    for (const json& member : value) deepest = std::max(deepest, Depth(member));
    return deepest + 1;
  }
  return 0;
}

// On JSON, the check is exact: it passes a value exactly when the value nests no deeper than the limit.
TEST(JsonDepthTest, OnRandomJsonTheCheckPassesExactlyTheValuesWithinTheLimit) {
  std::mt19937 rng(27);
  int refused = 0;
  for (int round = 0; round < 20000; ++round) {
    const json value = RandomValue(rng, 12);
    const std::string text = value.dump();
    const bool within = Depth(value) <= 8;
    EXPECT_EQ(CheckJsonDepth(text, 8).ok(), within) << text;
    refused += within ? 0 : 1;
  }
  EXPECT_GT(refused, 200);  // both sides of the limit were tried
  EXPECT_LT(refused, 19000);
}

// On anything else, the parser never goes deeper than a text that passed the check: random texts
// of JSON's structural characters, measured with nlohmann's own depth count.
TEST(JsonDepthTest, TheParserNeverNestsDeeperThanACheckedText) {
  std::mt19937 rng(27);
  const std::string alphabet = "[[[{{{]]}}\"\\:,1 a";
  for (int round = 0; round < 20000; ++round) {
    std::string text;
    for (size_t n = 1 + rng() % 200; n > 0; --n) text.push_back(alphabet[rng() % alphabet.size()]);
    if (!CheckJsonDepth(text, 8).ok()) continue;
    int deepest = 0;
    json::parser_callback_t measure = [&](int depth, json::parse_event_t, json&) {
      deepest = std::max(deepest, depth);
      return true;
    };
    const json parsed = json::parse(text, measure, false);  // usually not JSON: only the depth matters
    // nlohmann counts the members of the top-level value as depth 1, as the check counts its bracket.
    EXPECT_LE(deepest, 8) << text;
  }
}

class HostileDispatchTest : public ::testing::Test {
 protected:
  void SetUp() override {
    links_.AddExisting({.name = "eth1", .kind = "veth", .up = true});
    driver_ = std::move(driver::DriverService::Create(links_, net_store_).value());
    ipam_ = std::move(ipam::IpamService::Create(ipam_store_).value());
    api_ = std::make_unique<PluginApi>(*driver_, *ipam_);
  }
  testing::FakeLinkOps links_;
  testing::MemoryNetworkStore net_store_;
  testing::MemoryIpamStore ipam_store_;
  std::unique_ptr<driver::DriverService> driver_;
  std::unique_ptr<ipam::IpamService> ipam_;
  std::unique_ptr<PluginApi> api_;
};

// Before the check, nlohmann::json copied the parsed request recursively: SIGSEGV.
TEST_F(HostileDispatchTest, ADeeplyNestedBodyIs400OnEveryPathAndNothingCrashes) {
  const std::string body = Nested(200000);
  for (const auto& [path, handler] : api_->Routes()) {
    auto [status, out] = api_->Dispatch(path, body);
    EXPECT_EQ(status, 400) << path;
    const json answer = json::parse(out, nullptr, false);
    ASSERT_TRUE(answer.contains("Err")) << out;
    EXPECT_NE(answer["Err"].get<std::string>().find("64 levels deep, the limit"), std::string::npos) << out;
  }
  // A request as dockerd sends it still goes through.
  EXPECT_EQ(api_->Dispatch("/IpamDriver.RequestPool", R"({"Pool":"192.0.2.0/24","SubPool":"","Options":{},"V6":false})")
                .first,
            200);
}

TEST_F(HostileDispatchTest, AnEmptyBodyWhereAnObjectIsWantedSaysSo) {
  auto [status, out] = api_->Dispatch("/IpamDriver.RequestPool", "");
  EXPECT_EQ(status, 400);
  EXPECT_NE(out.find("request body is empty: IpamDriver.RequestPool wants a JSON object body"), std::string::npos)
      << out;
  EXPECT_EQ(api_->Dispatch("/Plugin.Activate", "").first, 200);  // dockerd's calls without arguments
}

// A reader as httplib's: feeds the bytes in pieces until the receiver says stop; counts what it fed.
struct FakeConnection {
  std::string bytes;
  size_t piece = 4096;
  size_t fed = 0;
  bool reads = false;
  httplib::ContentReader Reader() {
    return httplib::ContentReader(
        [this](httplib::ContentReceiver receiver) {
          reads = true;
          for (size_t at = 0; at < bytes.size(); at += piece) {
            const size_t n = std::min(piece, bytes.size() - at);
            fed += n;
            if (!receiver(bytes.data() + at, n)) return false;
          }
          return true;
        },
        nullptr);
  }
};

httplib::Request Post(std::initializer_list<std::pair<const char*, const char*>> headers) {
  httplib::Request req;
  req.method = "POST";
  for (const auto& [key, value] : headers) req.headers.emplace(key, value);
  return req;
}

Body ReadChunked(FakeConnection& conn, size_t limit = 1 << 20) {
  httplib::Request req = Post({{"Transfer-Encoding", "chunked"}});
  EXPECT_FALSE(AdmitRequest(req, true).has_value());
  TakeOverChunkedBody(req);
  EXPECT_FALSE(req.has_header("Transfer-Encoding"));  // httplib's own chunk reader is bypassed
  return ReadBody(req, conn.Reader(), limit);
}

TEST(ReadBodyTest, ChunkedBodiesAreDecodedWithExtensionsAndTrailers) {
  FakeConnection conn{.bytes = "5;name=x\r\nhello\r\n6\r\n world\r\n0\r\nTrailer: t\r\n\r\n", .piece = 3};
  Body body = ReadChunked(conn);
  EXPECT_EQ(body.outcome, Body::Outcome::kRead);
  EXPECT_EQ(body.text, "hello world");
  EXPECT_FALSE(body.close);
  FakeConnection pipelined{.bytes = "2\r\n{}\r\n0\r\n\r\nGET /metrics HTTP/1.1\r\n\r\n"};
  body = ReadChunked(pipelined);
  EXPECT_EQ(body.text, "{}");
  EXPECT_TRUE(body.close) << "a request after the last chunk was read with it: the connection is out of step";
}

TEST(ReadBodyTest, AChunkedBodyOverTheLimitIsDroppedAndAnEndlessOneIsCutAtTheDrainBound) {
  std::string chunk = "1000\r\n" + std::string(0x1000, 'x') + "\r\n";
  FakeConnection over;
  for (int i = 0; i < 300; ++i) over.bytes += chunk;  // 1.2 MiB
  over.bytes += "0\r\n\r\n";
  Body body = ReadChunked(over);
  EXPECT_EQ(body.outcome, Body::Outcome::kTooLarge);
  EXPECT_TRUE(body.text.empty());
  EXPECT_FALSE(body.close) << "read to its end: the connection can serve the next request";

  FakeConnection endless{.piece = 1 << 16};
  for (size_t n = 0; n < (kMaxDrainBytes >> 12) + 64; ++n) endless.bytes += chunk;
  body = ReadChunked(endless);
  EXPECT_EQ(body.outcome, Body::Outcome::kTooLarge);
  EXPECT_TRUE(body.close);
  EXPECT_LE(endless.fed, kMaxDrainBytes + (1 << 16) + 4096) << "read on past the drain bound";
}

TEST(ReadBodyTest, MalformedChunksAreRefusedAndAnEndlessSizeLineIsNotKept) {
  struct Case {
    std::string bytes;
    const char* problem;
  };
  const Case cases[] = {
      {std::string(1 << 20, '1'), "a line longer than 4096 bytes"},
      {"zz\r\nhello\r\n0\r\n\r\n", "chunk size \"zz\" is not a hexadecimal number"},
      {"-1\r\n", "is not a hexadecimal number"},
      {"1ffffffffffffffff\r\n", "is not a hexadecimal number"},
      {"2\r\nhello\r\n0\r\n\r\n", "a chunk is longer than its size says"},
      {"5\r\nhello\r\n", "the connection ended before the last chunk"},
      {"0\r\n" + std::string(5000, 'T') + "\r\n\r\n", "a line longer than 4096 bytes"},
  };
  for (const Case& c : cases) {
    FakeConnection conn{.bytes = c.bytes, .piece = 1024};
    Body body = ReadChunked(conn);
    EXPECT_EQ(body.outcome, Body::Outcome::kBroken) << c.bytes.substr(0, 40);
    EXPECT_NE(body.problem.find(c.problem), std::string::npos) << body.problem;
    EXPECT_TRUE(body.close);
    EXPECT_LE(conn.fed, size_t{8192}) << c.problem;
  }
}

TEST(ReadBodyTest, ContentLengthBodiesAndRequestsWithoutABody) {
  FakeConnection json_body{.bytes = R"({"Pool":"192.0.2.0/24"})"};
  httplib::Request req = Post({{"Content-Length", "24"}});
  Body body = ReadBody(req, json_body.Reader(), 1 << 20);
  EXPECT_EQ(body.outcome, Body::Outcome::kRead);
  EXPECT_EQ(body.text, json_body.bytes);

  // `curl -X POST`: no Content-Length, no chunks. httplib waited for the client to hang up.
  FakeConnection silent;
  body = ReadBody(Post({}), silent.Reader(), 1 << 20);
  EXPECT_EQ(body.outcome, Body::Outcome::kRead);
  EXPECT_TRUE(body.text.empty());
  EXPECT_FALSE(silent.reads);

  FakeConnection huge;
  body = ReadBody(Post({{"Content-Length", "67108864"}}), huge.Reader(), 1 << 20);
  EXPECT_EQ(body.outcome, Body::Outcome::kTooLarge);
  EXPECT_TRUE(body.close);
  EXPECT_FALSE(huge.reads) << "64 MiB declared: answered without reading";

  FakeConnection odd;
  body = ReadBody(Post({{"Content-Length", "12abc"}}), odd.Reader(), 1 << 20);
  EXPECT_EQ(body.outcome, Body::Outcome::kBroken);
  EXPECT_NE(body.problem.find("Content-Length \"12abc\""), std::string::npos);
  EXPECT_NE(TooLargeMessage(1 << 20).find("larger than 1048576 bytes (1 MiB)"), std::string::npos);
}

TEST(AdmitRequestTest, RequestsAreRefusedBeforeTheirBodyNamingWhatIsWanted) {
  struct Case {
    const char* method;
    std::vector<std::pair<const char*, const char*>> headers;
    bool post_bodies;
    int status;  // 0: admitted
    const char* text;
  };
  const Case cases[] = {
      {"POST", {{"Content-Length", "10"}}, true, 0, ""},
      {"POST", {{"Transfer-Encoding", "Chunked"}}, true, 0, ""},
      {"GET", {}, true, 0, ""},
      {"GET", {{"Content-Length", "0"}}, false, 0, ""},
      {"HEAD", {}, false, 0, ""},
      {"PUT", {{"Transfer-Encoding", "chunked"}}, true, 405, "method PUT is not served here: POST a JSON object"},
      {"POST", {{"Transfer-Encoding", "chunked"}}, false, 405, "method POST is not served here: only GET /metrics"},
      {"POST", {}, false, 405, "only GET /metrics, with no body"},
      {"GET", {{"Content-Length", "5"}}, false, 400, "a GET request here has no body"},
      {"GET", {{"Transfer-Encoding", "chunked"}}, true, 400, "a GET request here has no body"},
      {"POST", {{"Transfer-Encoding", "chunked"}, {"Content-Length", "5"}}, true, 400, "framed twice"},
      {"POST", {{"Content-Length", "5"}, {"Content-Length", "6"}}, true, 400, "framed twice"},
      {"POST", {{"Transfer-Encoding", "gzip, chunked"}}, true, 400, "Transfer-Encoding \"gzip, chunked\""},
      {"POST", {{"Content-Encoding", "gzip"}}, true, 415, "Content-Encoding \"gzip\" is not accepted"},
      {"POST", {{"Content-Type", "multipart/form-data; boundary=x"}}, true, 415, "multipart/form-data"},
  };
  for (const Case& c : cases) {
    httplib::Request req;
    req.method = c.method;
    for (const auto& [key, value] : c.headers) req.headers.emplace(key, value);
    const std::optional<Refusal> refusal = AdmitRequest(req, c.post_bodies);
    ASSERT_EQ(refusal.has_value(), c.status != 0) << c.method << " " << c.headers.size();
    if (!refusal) continue;
    EXPECT_EQ(refusal->status, c.status) << refusal->message;
    EXPECT_NE(refusal->message.find(c.text), std::string::npos) << refusal->message;
  }
}

}  // namespace
}  // namespace smv::api
