// The reservations commands ask the running daemon over its socket, so they see and change the
// same state the daemon serves (LMDB would allow a second writer, but the daemon's memory would
// not know).

#include <httplib.h>
#include <nlohmann/json.hpp>

#include <ctime>

#include "commands.h"

namespace smv::daemon {
namespace {

constexpr time_t kDaemonReadTimeoutSeconds = 10;

Result<nlohmann::json> AskDaemon(const std::string& socket, const std::string& call, const nlohmann::json& body) {
  httplib::Client client(socket);
  client.set_address_family(AF_UNIX);
  client.set_read_timeout(kDaemonReadTimeoutSeconds, 0);
  httplib::Result r =
      client.Post(("/StaticMacvlan." + call).c_str(),
                  body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace), "application/json");
  if (!r) {
    return Unavailable(fmt::format("cannot reach the static-macvlan daemon at {} ({}); is it running?", socket,
                                   httplib::to_string(r.error())));
  }
  nlohmann::json out = nlohmann::json::parse(r->body, nullptr, false);
  if (r->status != 200) {
    const bool has_err = out.is_object() && out.contains("Err") && out["Err"].is_string();
    return Internal(has_err ? out["Err"].get<std::string>() : r->body);
  }
  if (!out.is_object()) return Internal(fmt::format("the daemon at {} answered something that is not JSON", socket));
  return out;
}

std::string FormatTime(int64_t unix_seconds) {
  if (unix_seconds == 0) return "-";
  const std::time_t t = static_cast<std::time_t>(unix_seconds);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

// One field of a reservation as the daemon sent it; "" (or 0) when absent or mistyped.
std::string Text(const nlohmann::json& r, const char* field) {
  return r.contains(field) && r[field].is_string() ? r[field].get<std::string>() : "";
}
int64_t Number(const nlohmann::json& r, const char* field) {
  return r.contains(field) && r[field].is_number_integer() ? r[field].get<int64_t>() : 0;
}

}  // namespace

Status ListReservations(const ReservationFlags& flags) {
  auto out = AskDaemon(flags.socket, "ListReservations", {{"Network", flags.network}});
  if (!out.ok()) return out.status();
  const nlohmann::json list = out->value("Reservations", nlohmann::json::array());
  if (flags.json) {
    std::puts(list.dump(2).c_str());
    return OkStatus();
  }
  std::printf("%-32s %-16s %-18s %-28s %-22s %s\n", "NAME", "ADDRESS", "MAC", "POOL", "STATE", "SINCE");
  for (const nlohmann::json& r : list) {
    std::string state = Text(r, "State");
    if (r.contains("Node")) state += " on " + Text(r, "Node");
    if (r.contains("DriftedTo")) state += " (now " + Text(r, "DriftedTo") + ")";
    if (Number(r, "GoneSince") != 0) state += ", gone";
    std::printf("%-32s %-16s %-18s %-28s %-22s %s\n", Text(r, "Name").c_str(), Text(r, "Address").c_str(),
                Text(r, "MacAddress").c_str(), Text(r, "Pool").c_str(), state.c_str(),
                FormatTime(Number(r, "Since")).c_str());
  }
  return OkStatus();
}

Status ReserveAddress(const ReservationFlags& flags) {
  auto out = AskDaemon(flags.socket, "Reserve",
                       {{"Name", flags.name}, {"Address", flags.address}, {"Network", flags.network}});
  if (out.ok()) std::printf("%s reserved for %s\n", flags.address.c_str(), flags.name.c_str());
  return out.status();
}

Status ReleaseReservation(const ReservationFlags& flags) {
  if (flags.target.empty() == flags.node.empty()) {
    return InvalidArgument("reservations release: give a container name or address, or --node NODE, not both");
  }
  if (!flags.node.empty()) {
    auto out = AskDaemon(flags.socket, "ReleaseNode", {{"Node", flags.node}});
    if (out.ok()) {
      std::printf(
          "released %lld address(es) held by node %s; its containers' names keep their reservations and may "
          "run on another node now\n",
          static_cast<long long>(Number(*out, "Released")), flags.node.c_str());
    }
    return out.status();
  }
  auto out = AskDaemon(flags.socket, "Release", {{"Target", flags.target}});
  if (out.ok())
    std::printf("released %lld reservation(s) of %s\n", static_cast<long long>(Number(*out, "Released")),
                flags.target.c_str());
  return out.status();
}

}  // namespace smv::daemon
