// libFuzzer target: any bytes on a connection, read as a POST body (chunked, or with a
// Content-Length), give a body within the limit, a 413 or a named framing error; the reading never
// runs past the drain bound and never keeps more than the limit. The first byte picks the framing
// and the size of the reads; the rest is what the client sent after the headers.

#include <httplib.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "daemon/api/http_body.h"

namespace {

constexpr size_t kLimit = 4096;  // small, so that inputs reach past it

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const bool chunked = (data[0] & 1) != 0;
  const size_t piece = 1 + (data[0] >> 1);
  const std::string wire(reinterpret_cast<const char*>(data + 1), size - 1);
  httplib::Request req;
  req.method = "POST";
  if (chunked) {
    req.headers.emplace("Transfer-Encoding", "chunked");
  } else {
    req.headers.emplace("Content-Length", std::to_string(wire.size()));
  }
  if (smv::api::AdmitRequest(req, true)) __builtin_trap();  // both framings are admitted
  smv::api::TakeOverChunkedBody(req);
  size_t fed = 0;
  // As httplib reads: pieces of what arrived, until the receiver says stop or the client is done.
  httplib::ContentReader reader(
      [&](httplib::ContentReceiver receiver) {
        for (size_t at = 0; at < wire.size(); at += piece) {
          const size_t n = std::min(piece, wire.size() - at);
          fed += n;
          if (!receiver(wire.data() + at, n)) return false;
        }
        return true;
      },
      nullptr);
  const smv::api::Body body = smv::api::ReadBody(req, reader, kLimit);
  if (body.text.size() > kLimit) __builtin_trap();
  if (fed > kLimit + smv::api::kMaxDrainBytes + piece) __builtin_trap();
  if ((body.outcome == smv::api::Body::Outcome::kBroken) != !body.problem.empty()) __builtin_trap();
  if (body.outcome != smv::api::Body::Outcome::kRead && !body.text.empty()) __builtin_trap();
  if (!chunked && body.outcome == smv::api::Body::Outcome::kRead && body.text != wire) __builtin_trap();
  return 0;
}
