#pragma once
// Request bodies read with a bound whatever their framing, and answers given before (or instead
// of) reading one. cpp-httplib 0.11 holds its payload limit against Content-Length only: a chunked
// body was read whole into memory, as was the body of any request its routes did not take (a
// 512 MiB chunked POST to --metrics-listen made a server 1 GB), and its chunk reader keeps a
// chunk-size line of any length. Here every body byte read is counted, every chunk line is
// bounded, and a connection whose remaining bytes will not be read is closed after the answer.
// Not covered: httplib still reads the request line and each header line up to its newline
// before any check (an 8 KiB header limit is applied only after).

#include <cstddef>
#include <optional>
#include <string>

#include <httplib.h>

namespace smv::api {

// Past the limit, up to this many bytes of a body are read and dropped, so that a client that
// writes its whole request before it reads (httplib's client, curl) still gets the 413; a larger
// body is answered at once and its connection closed.
inline constexpr size_t kMaxDrainBytes = size_t{16} << 20;

// A request answered before its body is read.
struct Refusal {
  int status;
  std::string message;
};

// Checks a request whose headers are read and whose body is not (a pre-routing handler).
// `post_bodies`: the server takes POST bodies (the plugin socket) rather than GET and HEAD alone
// (--metrics-listen).
std::optional<Refusal> AdmitRequest(const httplib::Request& req, bool post_bodies);

// For an admitted request: marks a chunked body for ReadBody to decode in place of httplib, whose
// chunk reader keeps a chunk-size line of any length.
void TakeOverChunkedBody(httplib::Request& req);

struct Body {
  enum class Outcome { kRead, kTooLarge, kBroken };
  Outcome outcome = Outcome::kRead;
  std::string text;     // kRead: the body, empty when the request has none
  std::string problem;  // kBroken: what is wrong with the framing
  bool close = false;   // bytes of this request are left unread: close the connection after the answer
};

// The body of a POST that AdmitRequest admitted; at most `limit` bytes are kept.
Body ReadBody(const httplib::Request& req, const httplib::ContentReader& read, size_t limit);

// The 413 text: the limit, in bytes and MiB.
std::string TooLargeMessage(size_t limit);

// Answers with `body`, then closes the connection.
void AnswerAndClose(httplib::Response& res, int status, std::string body, const std::string& content_type);

}  // namespace smv::api
