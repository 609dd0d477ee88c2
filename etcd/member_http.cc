#include "etcd/member_http.h"

#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include "etcd/gateway_json.h"

namespace smv::etcd {
namespace {

constexpr size_t kQuotedErrorLength = 200;
constexpr int64_t kGrpcNotFound = 5;
constexpr int64_t kGrpcResourceExhausted = 8;

// etcd's error answer: {"error": "...", "message": "...", "code": gRPC code}. Read leniently: a
// garbled error answer still says what it can.
struct EtcdError {
  std::string message;
  int64_t code = 0;
};

EtcdError ParseError(const std::string& body) {
  const std::string raw = body.substr(0, kQuotedErrorLength);
  const nlohmann::json err = nlohmann::json::parse(body, nullptr, false);
  if (!err.is_object()) return {.message = raw};
  Result<std::string> message = ReadString(err, "message");
  if (!message.ok() || message->empty()) message = ReadString(err, "error");
  Result<int64_t> code = ReadInt64(err, "code");
  return {.message = message.ok() && !message->empty() ? *message : raw, .code = code.ok() ? *code : 0};
}

// "etcdserver: mvcc: database space exceeded": the NOSPACE alarm is raised and etcd takes no
// write that adds data until an operator frees space and disarms it.
bool OutOfSpace(const EtcdError& err) {
  return err.message.find("database space exceeded") != std::string::npos ||
         (err.code == kGrpcResourceExhausted && err.message.find("space") != std::string::npos);
}

bool AuthRefused(const Reply& reply, const EtcdError& err) {
  // etcd answers a missing user (auth enabled) and wrong credentials with 400, not 401.
  return reply.status == 401 || reply.status == 403 || err.message.find("user name is empty") != std::string::npos ||
         err.message.find("authentication failed") != std::string::npos;
}

bool TlsFailure(httplib::Error error) {
  return error == httplib::Error::SSLConnection || error == httplib::Error::SSLServerVerification ||
         error == httplib::Error::SSLLoadingCerts;
}

}  // namespace

std::string MemberName(const Endpoint& e) { return fmt::format("{}:{}", e.host, e.port); }

std::unique_ptr<httplib::Client> MemberClient(const Endpoint& e, const TlsFiles& tls) {
  if (!tls.enabled()) return std::make_unique<httplib::Client>(e.host, e.port);
  auto http =
      std::make_unique<httplib::Client>(fmt::format("https://{}:{}", e.host, e.port), tls.cert_file, tls.key_file);
  if (!tls.ca_file.empty()) http->set_ca_cert_path(tls.ca_file);
  http->enable_server_certificate_verification(true);
  return http;
}

Reply PostOnce(const Endpoint& e, const TlsFiles& tls, const Post& post, Millis connect, Millis wait) {
  Reply reply{.member = MemberName(e)};
  std::unique_ptr<httplib::Client> http = MemberClient(e, tls);
  http->set_connection_timeout(connect);
  http->set_read_timeout(wait);
  http->set_write_timeout(wait);
  httplib::Request request;
  request.method = "POST";
  request.path = post.path;
  request.body = post.body;
  request.set_header("Content-Type", "application/json");
  if (!post.token.empty()) request.set_header("Authorization", std::string(post.token));
  // etcd's gateway sends every error answer chunked with a trailer, which this HTTP library
  // cannot parse (it reports a read error after the body). The body arrives through the
  // receiver first, so an error status with a body is still etcd's answer.
  request.content_receiver = [&reply](const char* data, size_t size, uint64_t, uint64_t) {
    reply.body.append(data, size);
    return true;
  };
  httplib::Response response;
  const auto sent_at = SteadyClock::now();
  const bool received = http->send(request, response, reply.error);
  reply.waited = std::chrono::duration_cast<Millis>(SteadyClock::now() - sent_at);
  reply.answered = received || (reply.error == httplib::Error::Read && response.status >= 400 && !reply.body.empty());
  reply.sent = !reply.answered && reply.error == httplib::Error::Read;
  reply.status = response.status;
  spdlog::debug("etcd {} POST {} status={} took_us={}", reply.member, post.path, reply.status,
                std::chrono::duration_cast<std::chrono::microseconds>(SteadyClock::now() - sent_at).count());
  return reply;
}

bool Unreachable(const Reply& reply) {
  return !reply.answered && !reply.sent &&
         (reply.error == httplib::Error::Connection || reply.error == httplib::Error::ConnectionTimeout);
}

Status Refusal(const Reply& reply, const std::string& path, const ClientOptions& options) {
  const EtcdError err = ParseError(reply.body);
  if (OutOfSpace(err)) {
    return ResourceExhausted(fmt::format(
        "etcd is out of space (alarm NOSPACE, its --quota-backend-bytes is reached; {} refused {}: {}): compact "
        "and defragment it (etcdctl compact, etcdctl defrag), then `etcdctl alarm disarm`",
        reply.member, path, err.message));
  }
  if (AuthRefused(reply, err)) {
    return PermissionDenied(fmt::format("etcd {} refused {}{}: {}", reply.member, path,
                                        options.user.empty() ? fmt::format(" (it wants a user: {})", options.names.user)
                                                             : fmt::format(" to user \"{}\"", options.user),
                                        err.message));
  }
  if (err.message.find("CommonName") != std::string::npos) {
    return InvalidArgument(fmt::format(
        "etcd {} refused {}: {} (members that check client certificates want one without a Common Name from "
        "clients of their JSON gateway: issue {} without CN and name the user with {})",
        reply.member, path, err.message, options.names.cert_file, options.names.user));
  }
  if (err.code == kGrpcNotFound)
    return NotFound(fmt::format("etcd {} answered {}: {}", reply.member, path, err.message));
  if (reply.status < 500 && reply.status != 429) {
    return Internal(fmt::format("etcd {} refused {}: {}", reply.member, path, err.message));
  }
  return OkStatus();
}

std::string Describe(const Reply& reply, const ClientOptions& options, const Endpoint& e) {
  if (reply.answered) return fmt::format("{}: {}", reply.member, ParseError(reply.body).message);
  if (reply.sent) return fmt::format("{}: no answer in {} ms", reply.member, reply.waited.count());
  std::string out = fmt::format("{}: {}", reply.member, httplib::to_string(reply.error));
  if (TlsFailure(reply.error)) {
    out += fmt::format(
        " (TLS: the member's certificate must be signed by {} \"{}\" and name {}; a member started "
        "with --client-cert-auth wants {} and {} signed by its CA)",
        options.names.ca_file, options.tls.ca_file, e.host, options.names.cert_file, options.names.key_file);
  }
  return out;
}

Status EtcdUnavailable(const std::string& detail) { return Unavailable(fmt::format("etcd: {}", detail)); }

}  // namespace smv::etcd
