// static-macvlan reservations ls / reserve / release / export / import. They ask the running
// daemon over its socket, so they see and change the same state the daemon serves (LMDB would
// allow a second writer, but the daemon's memory would not know).

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/ip.h"
#include "daemon/api/wire.h"
#include "daemon/cli/daemon_client.h"
#include "daemon/commands.h"
#include "engine/docker_engine.h"

namespace smv::daemon {
namespace {

std::string FormatTime(int64_t unix_seconds) {
  if (unix_seconds == 0) return "-";
  const std::time_t t = static_cast<std::time_t>(unix_seconds);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

using api::wire::ReservationReply;

// A field of an import file; "" when absent or mistyped.
std::string Text(const nlohmann::json& r, const char* field) {
  return r.contains(field) && r[field].is_string() ? r[field].get<std::string>() : "";
}

constexpr int kExportVersion = 1;

// A field of the document that may be unknown: its text, or null.
nlohmann::ordered_json OrNull(const std::string& text) {
  return text.empty() ? nlohmann::ordered_json() : nlohmann::ordered_json(text);
}
nlohmann::ordered_json TimeOrNull(int64_t unix_seconds) {
  return unix_seconds == 0 ? nlohmann::ordered_json() : nlohmann::ordered_json(FormatTime(unix_seconds));
}

// The one JSON shape of a book of reservations: `ls --json` prints it, `export` writes it and
// `import` reads it (only "name" and "address"; docs/sticky-addresses.md describes every field).
// Version 1 had name, address and pool; the fields after them were added later, and import still
// ignores them, so older static-macvlan versions import this document too.
nlohmann::ordered_json ReservationsDocument(const nlohmann::json& listed) {
  nlohmann::ordered_json entries = nlohmann::ordered_json::array();
  for (const ReservationReply& r : api::wire::DecodeReservations(listed)) {
    entries.push_back({{"name", r.name},
                       {"address", r.address},
                       {"pool", r.pool},
                       {"mac", OrNull(r.mac)},
                       {"state", r.state},
                       {"node", OrNull(r.node)},
                       {"drifted_to", OrNull(r.drifted_to)},
                       {"since", TimeOrNull(r.since)},
                       {"gone_since", TimeOrNull(r.gone_since)}});
  }
  return {{"version", kExportVersion}, {"reservations", std::move(entries)}};
}

// How wide `text` shows in a terminal: one column per UTF-8 character.
size_t Columns(const std::string& text) {
  return static_cast<size_t>(std::count_if(text.begin(), text.end(), [](char c) { return (c & 0xC0) != 0x80; }));
}

// Rows in columns as wide as their widest cell, three spaces apart (as `docker ps` prints them).
void PrintColumns(const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> width;
  for (const std::vector<std::string>& row : rows) {
    width.resize(std::max(width.size(), row.size()));
    for (size_t i = 0; i < row.size(); ++i) width[i] = std::max(width[i], Columns(row[i]));
  }
  for (const std::vector<std::string>& row : rows) {
    std::string line;
    for (size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) line.append(width[i] - Columns(row[i]) + 3, ' ');
    }
    std::puts(line.c_str());
  }
}

void PrintDriftNote(int drifted) {
  std::printf(
      "\n%d name(s) drifted: each started at once with others on an engine that does not tell the IPAM\n"
      "which container asks (Docker < 29), and got an address reserved for none of them. Each gets its\n"
      "reservation back at its next start on its own. To keep them from drifting, give them --ip, or for\n"
      "a compose project: static-macvlan compose pin -p PROJECT -o pin.yaml; docker compose -f "
      "compose.yaml -f pin.yaml up -d\n",
      drifted);
}

}  // namespace

Status ListReservations(const ReservationFlags& flags) {
  auto out =
      AskDaemon(flags.socket, api::wire::kListReservationsPath, api::wire::EncodeListReservations(flags.network));
  if (!out.ok()) return out.status();
  if (flags.json) {
    std::puts(ReservationsDocument(*out).dump(2).c_str());
    return OkStatus();
  }
  std::vector<std::vector<std::string>> rows = {{"NAME", "ADDRESS", "MAC", "POOL", "STATE", "SINCE"}};
  int drifted = 0;
  for (const ReservationReply& r : api::wire::DecodeReservations(*out)) {
    std::string state = r.state;
    if (!r.node.empty()) state += " on " + r.node;
    if (!r.drifted_to.empty()) state += " (now " + r.drifted_to + ")";
    if (r.gone_since != 0) state += ", gone";
    rows.push_back({r.name, r.address, r.mac.empty() ? "-" : r.mac, r.pool, state, FormatTime(r.since)});
    if (!r.drifted_to.empty()) ++drifted;
  }
  PrintColumns(rows);
  if (drifted > 0) PrintDriftNote(drifted);
  return OkStatus();
}

Status ReserveAddress(const ReservationFlags& flags) {
  auto out = AskDaemon(flags.socket, api::wire::kReservePath,
                       api::wire::EncodeReserve({flags.name, flags.address, flags.network}));
  if (out.ok()) std::printf("%s reserved for %s\n", flags.address.c_str(), flags.name.c_str());
  return out.status();
}

Status ReleaseReservation(const ReservationFlags& flags) {
  if (flags.target.empty() == flags.node.empty()) {
    return InvalidArgument("reservations release: give a container name or address, or --node NODE, not both");
  }
  if (!flags.node.empty()) {
    auto out = AskDaemon(flags.socket, api::wire::kReleaseNodePath, api::wire::EncodeReleaseNode(flags.node));
    if (out.ok()) {
      std::printf(
          "released %lld address(es) held by node %s; its containers' names keep their reservations and may "
          "run on another node now\n",
          static_cast<long long>(api::wire::DecodeReleased(*out)), flags.node.c_str());
    }
    return out.status();
  }
  auto out = AskDaemon(flags.socket, api::wire::kReleasePath, api::wire::EncodeRelease(flags.target));
  if (out.ok()) {
    std::printf("released %lld reservation(s) of %s\n", static_cast<long long>(api::wire::DecodeReleased(*out)),
                flags.target.c_str());
  }
  return out.status();
}

namespace {

struct NameAddress {
  std::string name;
  std::string address;
};

// What an import wants to reserve, read from a file `reservations export` wrote.
Result<std::vector<NameAddress>> ReadExport(const std::string& path) {
  std::ifstream in(path);
  if (!in) return NotFound(fmt::format("import file \"{}\": cannot read it", path));
  const nlohmann::json doc = nlohmann::json::parse(in, nullptr, false);
  if (doc.is_discarded() || !doc.is_object()) {
    return InvalidArgument(fmt::format("import file \"{}\": not JSON (want what reservations export prints)", path));
  }
  if (!doc.contains("version") || doc["version"] != kExportVersion) {
    return InvalidArgument(fmt::format("import file \"{}\": version {}, this static-macvlan reads version {}", path,
                                       doc.value("version", nlohmann::json()).dump(), kExportVersion));
  }
  std::vector<NameAddress> out;
  for (const nlohmann::json& r : doc.value("reservations", nlohmann::json::array())) {
    NameAddress entry{Text(r, "name"), Text(r, "address")};
    if (entry.name.empty() || entry.address.empty()) {
      return InvalidArgument(
          fmt::format("import file \"{}\": an entry without \"name\" or \"address\": {}", path, r.dump()));
    }
    if (!api::wire::IsContainerName(entry.name)) {
      return InvalidArgument(fmt::format("import file \"{}\": \"name\" \"{}\" is not a container name: want {}", path,
                                         entry.name, api::wire::kContainerNameRule));
    }
    out.push_back(std::move(entry));
  }
  return out;
}

// Each container of a Docker network with the addresses it has there now.
Result<std::vector<NameAddress>> ReadDockerNetwork(const ReservationFlags& flags) {
  auto engine = engine::DockerEngine::Create(flags.docker_host);
  if (!engine.ok()) return engine.status();
  auto network = (*engine)->InspectNetwork(flags.from_docker, std::chrono::seconds(10));
  if (!network.ok()) {
    return Status(network.status().code(),
                  fmt::format("--from-docker \"{}\": {}", flags.from_docker, network.status().message()));
  }
  std::vector<NameAddress> out;
  for (const engine::EngineEndpoint& e : network->endpoints) {
    for (const std::string* address : {&e.ipv4, &e.ipv6}) {
      if (!address->empty()) out.push_back({e.name, *address});
    }
  }
  return out;
}

// What --network holds: address -> name, and each name's address per family (one of each).
struct HeldReservations {
  std::map<std::string, std::string> name_at;
  std::map<std::pair<std::string, int>, std::string> address_of;
};

int FamilyOf(const std::string& address) {
  const std::optional<IpAddress> ip = IpAddress::Parse(address);
  return ip ? static_cast<int>(ip->family()) : -1;
}

HeldReservations ReadHeld(const nlohmann::json& listed) {
  HeldReservations held;
  for (const ReservationReply& r : api::wire::DecodeReservations(listed)) {
    held.name_at[r.address] = r.name;
    held.address_of[{r.name, FamilyOf(r.address)}] = r.address;
  }
  return held;
}

// The reservations still to make. Every conflict is listed before anything is reserved: all or nothing.
Result<std::vector<NameAddress>> PlanImport(const std::vector<NameAddress>& wanted, const HeldReservations& held,
                                            const std::string& network) {
  std::vector<std::string> conflicts;
  std::vector<NameAddress> todo;
  std::map<std::string, std::string> asked;  // address -> name, within this import
  for (const NameAddress& e : wanted) {
    if (auto [it, fresh] = asked.emplace(e.address, e.name); !fresh && it->second != e.name) {
      conflicts.push_back(fmt::format("{}: asked for both {} and {}", e.address, it->second, e.name));
      continue;
    }
    if (auto it = held.name_at.find(e.address); it != held.name_at.end()) {
      if (it->second != e.name)
        conflicts.push_back(fmt::format("{}: reserved for {}, not {}", e.address, it->second, e.name));
      continue;  // already reserved as wanted
    }
    if (auto at = held.address_of.find({e.name, FamilyOf(e.address)}); at != held.address_of.end()) {
      conflicts.push_back(fmt::format("{}: already reserved at {}, not {}", e.name, at->second, e.address));
      continue;
    }
    todo.push_back(e);
  }
  if (conflicts.empty()) return todo;
  std::string list;
  for (const std::string& c : conflicts) list += "\n  " + c;
  return FailedPrecondition(
      fmt::format("nothing imported into network \"{}\": {} conflict(s) (release them with "
                  "static-macvlan reservations release, or leave them out):{}",
                  network, conflicts.size(), list));
}

// Reserves each in turn; on a refusal, releases what this import reserved. Returns how many it reserved.
Result<size_t> ReserveAll(const ReservationFlags& flags, const std::vector<NameAddress>& todo) {
  std::vector<std::string> done;
  for (const NameAddress& e : todo) {
    auto reserved =
        AskDaemon(flags.socket, api::wire::kReservePath, api::wire::EncodeReserve({e.name, e.address, flags.network}));
    if (!reserved.ok()) {
      for (const std::string& address : done) {
        static_cast<void>(AskDaemon(flags.socket, api::wire::kReleasePath, api::wire::EncodeRelease(address)));
      }
      return Status(reserved.status().code(),
                    fmt::format("nothing imported into network \"{}\" ({} {}): {}", flags.network, e.name, e.address,
                                reserved.status().message()));
    }
    done.push_back(e.address);
    std::printf("%s reserved for %s\n", e.address.c_str(), e.name.c_str());
  }
  return done.size();
}

}  // namespace

Status ExportReservations(const ReservationFlags& flags) {
  auto out =
      AskDaemon(flags.socket, api::wire::kListReservationsPath, api::wire::EncodeListReservations(flags.network));
  if (!out.ok()) return out.status();
  std::puts(ReservationsDocument(*out).dump(2).c_str());
  return OkStatus();
}

Status ImportReservations(const ReservationFlags& flags) {
  if (flags.file.empty() == flags.from_docker.empty()) {
    return InvalidArgument("reservations import: give a FILE (from reservations export) or --from-docker NETWORK");
  }
  Result<std::vector<NameAddress>> wanted = flags.file.empty() ? ReadDockerNetwork(flags) : ReadExport(flags.file);
  if (!wanted.ok()) return wanted.status();
  auto listed =
      AskDaemon(flags.socket, api::wire::kListReservationsPath, api::wire::EncodeListReservations(flags.network));
  if (!listed.ok()) return listed.status();
  Result<std::vector<NameAddress>> todo = PlanImport(*wanted, ReadHeld(*listed), flags.network);
  if (!todo.ok()) return todo.status();
  Result<size_t> reserved = ReserveAll(flags, *todo);
  if (!reserved.ok()) return reserved.status();
  std::printf("imported %zu reservation(s) into network %s (%zu already there)\n", *reserved, flags.network.c_str(),
              wanted->size() - *reserved);
  return OkStatus();
}

}  // namespace smv::daemon
