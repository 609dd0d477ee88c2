#pragma once
// The static-macvlan commands; main.cc only parses flags and calls one of these.

#include <cstddef>
#include <string>
#include <vector>

#include "common/status.h"

namespace smv::ipam {
struct UndecodableKey;
}

namespace smv::daemon {

inline constexpr const char* kDefaultSocket = "/run/docker/plugins/static-macvlan.sock";
// The socket's file name, also inside a managed plugin's directory /run/docker/plugins/<id>/.
inline constexpr const char* kSocketName = "static-macvlan.sock";

struct ServeFlags {
  std::string socket = kDefaultSocket;
  std::string state_dir = "/var/lib/static-macvlan";
  std::string log_level = "info";
  std::string docker_host = "unix:///var/run/docker.sock";
  size_t db_size_mib = 1024;
  unsigned reconcile_seconds = 5;
  unsigned stale_after_seconds = 60;
  std::vector<std::string> allowed_parents;
  std::string metrics_listen;  // ADDR:PORT for GET /metrics over TCP; "" = the plugin socket only
  bool mac_identity = false;   // IpamDriver capability RequiresMACAddress (see --mac-identity)
  // "lmdb" (the embedded book in --state-dir) or "etcd://H:P[,H:P...]" (a book shared by hosts).
  std::string store = "lmdb";
  std::string node_name;                         // this host in a shared book; default: the hostname
  std::string net_sysctl_dir = "/proc/sys/net";  // another path where /proc/sys is read-only (managed plugin)
  // etcd client TLS and user authentication (--store etcd:// only).
  std::string etcd_cacert, etcd_cert, etcd_key;
  std::string etcd_user, etcd_password_file;
};

struct ReservationFlags {
  std::string socket = kDefaultSocket;
  std::string network;
  bool json = false;
  std::string name;
  std::string address;
  std::string target;
  std::string node;  // release: every address this node of a shared book holds
  // import: from a Docker network's running containers (through the engine), or from a file
  std::string from_docker;
  std::string file;
  std::string docker_host = "unix:///var/run/docker.sock";
};

struct ComposePinFlags {
  std::string socket = kDefaultSocket;
  std::string docker_host = "unix:///var/run/docker.sock";
  std::string project;
  std::string output;  // "" = stdout
};

struct ExecFlags {
  std::string docker_host = "unix:///var/run/docker.sock";
  std::string container;
  std::vector<std::string> command;
};

// Opens the store, reconciles the kernel with it, listens; returns after SIGTERM/SIGINT.
Status Serve(const ServeFlags& flags);
// Reads the state database (beside a running daemon) and prints every inconsistency; an error
// when there is one.
Status Fsck(const ServeFlags& flags);
// What fsck finds, without printing; `summary` gets the counts line. The shared book's records
// that do not decode go to `undecodable` when given (doctor shows each with its fix), else among
// the problems.
Result<std::vector<std::string>> FsckProblems(const ServeFlags& flags, std::string& summary,
                                              std::vector<ipam::UndecodableKey>* undecodable = nullptr);

struct DoctorFlags {
  ServeFlags serve;     // --socket, --state-dir, --store and the etcd flags: where the daemon and its state are
  std::string network;  // only this network (id, id prefix or name); "" = all
  bool json = false;
};
// One check per line (ok / FAIL, and for each failure the command that fixes it); an error when
// any check failed.
Status Doctor(const DoctorFlags& flags);

// Where the CLI finds the daemon: `given` when it was named or exists; otherwise the socket of a
// managed plugin (/run/docker/plugins/<id>/static-macvlan.sock) when there is exactly one.
std::string FindDaemonSocket(const std::string& given);

Status ListReservations(const ReservationFlags& flags);
Status ReserveAddress(const ReservationFlags& flags);
Status ReleaseReservation(const ReservationFlags& flags);
// Prints the reservations (of --network) as an import file: {"version":1,"reservations":[...]}.
Status ExportReservations(const ReservationFlags& flags);
// Reserves name -> address pairs in --network: all of them, or none when any conflicts.
Status ImportReservations(const ReservationFlags& flags);
// Writes a compose override giving each service of flags.project its reserved addresses
// (compose_pin.h says why).
Status ComposePin(const ComposePinFlags& flags);
// Runs flags.command in the network namespace of a running container (replaces this process;
// returns only on failure).
Status ExecInContainer(const ExecFlags& flags);

}  // namespace smv::daemon
