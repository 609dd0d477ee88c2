#pragma once
// The stream of a watch (POST /v3/watch): JSON lines, one per answer of etcd, arriving in pieces.
// The line reader cuts whole lines; the decoder says what one line means, without throwing.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <httplib.h>

#include "common/status.h"
#include "etcd/kv_client.h"

namespace smv::etcd {

// POST /v3/watch: every key under `prefix` from `start_revision` on.
httplib::Request WatchRequest(std::string_view prefix, int64_t start_revision, const std::string& token);

// Cuts a byte stream into lines.
class LineReader {
 public:
  void Append(const char* data, size_t size) { pending_.append(data, size); }
  // The next whole line without its '\n'; nullopt until one is complete.
  std::optional<std::string> Next();

 private:
  std::string pending_;  // a line not complete yet
};

// What one line of a watch stream says.
struct WatchLine {
  enum class Kind { kNothing, kEvents, kEnd };
  Kind kind = Kind::kNothing;  // kNothing: the watch was created, or progress
  std::vector<WatchEvent> events;
  Status end;  // kEnd: why (kAborted: compacted; kPermissionDenied: token refused; kUnavailable;
               // kInternal: a line this client cannot read)
  bool token_refused = false;
};

// Decodes one line from `member` of a watch that started at `start_revision`.
WatchLine DecodeWatchLine(std::string_view line, std::string_view member, int64_t start_revision);

// Feeds the stream's pieces through the line reader and the decoder to the receiver.
class WatchStream {
 public:
  WatchStream(std::string member, int64_t start_revision, const WatchReceiver& receive)
      : member_(std::move(member)), start_revision_(start_revision), receive_(receive) {}

  // The next piece of the stream; false ends the watch.
  bool Feed(const char* data, size_t size);
  bool receiving() const { return receiving_; }
  const Status& ended() const { return ended_; }  // why the stream said to end (OK: the receiver did)
  bool delivered() const { return delivered_; }
  bool token_refused() const { return token_refused_; }

 private:
  const std::string member_;
  const int64_t start_revision_;
  const WatchReceiver& receive_;
  LineReader lines_;
  bool receiving_ = true;
  bool delivered_ = false;
  bool token_refused_ = false;
  Status ended_;
};

}  // namespace smv::etcd
