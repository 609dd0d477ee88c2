#include "daemon/api/http_body.h"

#include <fmt/format.h>
#include <strings.h>

#include <charconv>
#include <memory>
#include <string_view>

namespace smv::api {
namespace {

// Set on a chunked request in place of its Transfer-Encoding, so that httplib hands ReadBody the
// raw bytes (its own chunk reader keeps a chunk-size line of any length).
constexpr const char* kChunkedMarker = "X-Static-Macvlan-Chunked";
// Longest chunk-size line, and the most trailer bytes, a chunked body may have.
constexpr size_t kMaxChunkLineBytes = 4096;

bool IEquals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && strncasecmp(a.data(), b.data(), a.size()) == 0;
}

// Decodes a chunked body (RFC 9112 7.1) as it arrives, holding one line at most.
class ChunkedDecoder {
 public:
  // Feeds bytes read from the connection; false stops the reading (malformed, complete, or the
  // sink said stop).
  bool Feed(const char* data, size_t n, const httplib::ContentReceiver& sink) {
    for (size_t i = 0; i < n;) {
      if (state_ == State::kDone) {
        leftover_ = true;  // bytes after the last chunk: a pipelined request, which is not read
        return false;
      }
      if (state_ == State::kData) {
        const size_t take = std::min<uint64_t>(remaining_, n - i);
        if (!sink(data + i, take)) return false;
        i += take;
        remaining_ -= take;
        if (remaining_ == 0) state_ = State::kDataEnd;
        continue;
      }
      const char c = data[i++];
      if (c != '\n') {
        if (line_.size() >= kMaxChunkLineBytes)
          return Fail(fmt::format("a line longer than {} bytes", kMaxChunkLineBytes));
        line_.push_back(c);
        continue;
      }
      if (!line_.empty() && line_.back() == '\r') line_.pop_back();
      if (!EndLine()) return false;
      line_.clear();
    }
    return state_ != State::kDone;
  }
  bool done() const { return state_ == State::kDone; }
  bool leftover() const { return leftover_; }
  const std::string& problem() const { return problem_; }

 private:
  enum class State { kSize, kData, kDataEnd, kTrailer, kDone };

  bool EndLine() {
    switch (state_) {
      case State::kSize: {
        std::string_view size = std::string_view(line_).substr(0, line_.find(';'));  // extensions are ignored
        while (!size.empty() && (size.back() == ' ' || size.back() == '\t')) size.remove_suffix(1);
        const auto [end, ec] = std::from_chars(size.data(), size.data() + size.size(), remaining_, 16);
        if (size.empty() || size.size() > 15 || ec != std::errc() || end != size.data() + size.size()) {
          return Fail(fmt::format("chunk size \"{}\" is not a hexadecimal number", line_.substr(0, 32)));
        }
        state_ = remaining_ == 0 ? State::kTrailer : State::kData;
        return true;
      }
      case State::kDataEnd:
        if (!line_.empty()) return Fail("a chunk is longer than its size says");
        state_ = State::kSize;
        return true;
      case State::kTrailer:
        trailer_bytes_ += line_.size();
        if (trailer_bytes_ > kMaxChunkLineBytes) return Fail(fmt::format("trailers over {} bytes", kMaxChunkLineBytes));
        if (line_.empty()) state_ = State::kDone;
        return true;
      default: return false;
    }
  }
  bool Fail(std::string problem) {
    problem_ = "chunked body: " + std::move(problem);
    return false;
  }

  State state_ = State::kSize;
  std::string line_;
  uint64_t remaining_ = 0;
  size_t trailer_bytes_ = 0;
  bool leftover_ = false;
  std::string problem_;
};

Body Ended(Body::Outcome outcome, bool close, std::string problem = "") {
  Body body;
  body.outcome = outcome;
  body.problem = std::move(problem);
  body.close = close;
  return body;
}
Body Broken(std::string problem) { return Ended(Body::Outcome::kBroken, true, std::move(problem)); }

}  // namespace

std::optional<Refusal> AdmitRequest(const httplib::Request& req, bool post_bodies) {
  const bool get_or_head = req.method == "GET" || req.method == "HEAD";
  if (!get_or_head && !(post_bodies && req.method == "POST")) {
    return Refusal{405, fmt::format("method {} is not served here: {}", req.method,
                                    post_bodies ? "POST a JSON object body to a plugin path, or GET /metrics"
                                                : "only GET /metrics, with no body")};
  }
  const bool has_length = req.has_header("Content-Length");
  const std::string encoding = req.get_header_value("Transfer-Encoding");
  if (get_or_head) {
    if (req.has_header("Transfer-Encoding") || (has_length && req.get_header_value("Content-Length") != "0")) {
      return Refusal{400, fmt::format("a {} request here has no body", req.method)};
    }
    return std::nullopt;
  }
  if (req.get_header_value_count("Content-Length") > 1 || req.get_header_value_count("Transfer-Encoding") > 1 ||
      (has_length && req.has_header("Transfer-Encoding"))) {
    return Refusal{400, "the request's length is framed twice: send one Content-Length or Transfer-Encoding: chunked"};
  }
  if (req.has_header("Transfer-Encoding") && !IEquals(encoding, "chunked")) {
    return Refusal{400, fmt::format("Transfer-Encoding \"{}\" is not accepted: send Content-Length or chunked",
                                    encoding.substr(0, 64))};
  }
  const std::string content_encoding = req.get_header_value("Content-Encoding");
  if (!content_encoding.empty() && !IEquals(content_encoding, "identity")) {
    return Refusal{415, fmt::format("Content-Encoding \"{}\" is not accepted: send the JSON body uncompressed",
                                    content_encoding.substr(0, 64))};
  }
  if (req.is_multipart_form_data()) {
    return Refusal{415, "Content-Type multipart/form-data is not accepted: POST a JSON object body"};
  }
  return std::nullopt;
}

void TakeOverChunkedBody(httplib::Request& req) {
  req.headers.erase(kChunkedMarker);  // only we set it
  if (!IEquals(req.get_header_value("Transfer-Encoding"), "chunked")) return;
  req.headers.erase("Transfer-Encoding");
  req.headers.emplace(kChunkedMarker, "1");
}

Body ReadBody(const httplib::Request& req, const httplib::ContentReader& read, size_t limit) {
  Body out;
  uint64_t seen = 0;
  // Keeps up to `limit` bytes; past it, drops them and reads on until kMaxDrainBytes.
  auto keep = [&](const char* data, size_t n) {
    seen += n;
    if (seen <= limit) {
      out.text.append(data, n);
      return true;
    }
    if (out.outcome != Body::Outcome::kTooLarge) std::string().swap(out.text);
    out.outcome = Body::Outcome::kTooLarge;
    return seen <= kMaxDrainBytes;
  };
  if (req.has_header(kChunkedMarker)) {
    ChunkedDecoder decoder;
    read([&](const char* data, size_t n) { return decoder.Feed(data, n, keep); });
    if (!decoder.problem().empty()) return Broken(decoder.problem());
    if (!decoder.done() && out.outcome != Body::Outcome::kTooLarge) {
      return Broken("chunked body: the connection ended before the last chunk");
    }
    out.close = !decoder.done() || decoder.leftover();
    return out;
  }
  // A request without Content-Length or chunks has no body (RFC 9112 6.3); httplib would wait
  // for the client to hang up.
  if (!req.has_header("Content-Length")) return out;
  const std::string value = req.get_header_value("Content-Length");
  uint64_t length = 0;
  const auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), length);
  if (value.empty() || ec != std::errc() || end != value.data() + value.size()) {
    return Broken(fmt::format("Content-Length \"{}\" is not a number of bytes", value.substr(0, 32)));
  }
  if (length > kMaxDrainBytes) return Ended(Body::Outcome::kTooLarge, true);  // unread
  if (length == 0) return out;
  if (length > limit) {
    // Read and dropped (by httplib itself when its payload limit is lower): the connection stays in step.
    read([](const char*, size_t) { return true; });
    return Ended(Body::Outcome::kTooLarge, false);
  }
  if (!read(keep)) return Broken(fmt::format("the connection ended before the {} bytes of Content-Length", length));
  return out;
}

std::string TooLargeMessage(size_t limit) {
  return fmt::format("request body larger than {} bytes ({} MiB), the limit for any request here", limit,
                     static_cast<double>(limit) / (1 << 20));
}

void AnswerAndClose(httplib::Response& res, int status, std::string body, const std::string& content_type) {
  res.status = status;
  res.set_header("Connection", "close");
  auto text = std::make_shared<const std::string>(std::move(body));
  res.set_content_provider(text->size(), content_type, [text](size_t offset, size_t length, httplib::DataSink& sink) {
    sink.write(text->data() + offset, length);
    return false;  // httplib closes a connection whose provider fails; all is written
  });
}

}  // namespace smv::api
