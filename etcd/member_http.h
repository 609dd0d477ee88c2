#pragma once
// One POST to one etcd member and what its reply means: the HTTP(S) connection with the client's
// TLS files, the reply's classification (etcd's answer, a refusal to pass on, or a member failure
// that sends the call to the next member) and the words that say why.

#include <chrono>
#include <memory>
#include <string>
#include <string_view>

#include <httplib.h>

#include "common/clock.h"
#include "common/status.h"
#include "etcd/kv_client.h"

namespace smv::etcd {

// "host:port", as errors name a member.
std::string MemberName(const Endpoint& e);

// A client for `e`: https with the TLS files when any is given.
std::unique_ptr<httplib::Client> MemberClient(const Endpoint& e, const TlsFiles& tls);

// What one POST to one member came to.
struct Reply {
  std::string member;     // "host:port"
  bool answered = false;  // an HTTP answer came: `status` and `body`
  bool sent = false;      // no answer, but the request went out: its outcome is unknown
  int status = 0;
  std::string body;
  httplib::Error error = httplib::Error::Success;
  Millis waited{0};
};

// One request; the views outlive the POST.
struct Post {
  std::string_view path;
  std::string_view body;
  std::string_view token;  // etcd's auth token; empty: none
};

// POSTs to `e`, connecting within `connect` and waiting at most `wait` for the answer.
Reply PostOnce(const Endpoint& e, const TlsFiles& tls, const Post& post, Millis connect, Millis wait);

// No connection was made: the request never went out.
bool Unreachable(const Reply& reply);

// What an answer other than 200 means: OK to go on to the next member (a member without quorum
// answers 503, one too far behind 429), or the call's error (out of space, a refused user or
// certificate, a missing key or lease, any other 4xx).
Status Refusal(const Reply& reply, const std::string& path, const ClientOptions& options);

// Why a member gave no usable answer, for the error once every member failed.
std::string Describe(const Reply& reply, const ClientOptions& options, const Endpoint& e);

// The client's one Unavailable: "etcd: DETAIL". The client does not know what it stores: its
// user says that once (the IPAM: "shared address store unavailable (etcd: DETAIL)").
Status EtcdUnavailable(const std::string& detail);

}  // namespace smv::etcd
