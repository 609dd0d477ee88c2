#pragma once
// NetworkDriver semantics on LinkOps + NetworkStore. Thread-safe: one mutex guards the state
// maps, the store writes and the verbs' kernel changes (not a container link's deletion, not the
// reaper's: link_reaper.h). Create paths are all-or-nothing (they undo their own kernel work on
// failure, since dockerd sends no DeleteEndpoint after a failed CreateEndpoint); delete paths are
// idempotent and best effort.

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "common/ip.h"
#include "common/status.h"
#include "driver/announce/announce_schedule.h"
#include "driver/link_names.h"
#include "driver/link_reaper.h"
#include "driver/netlink/link_ops.h"
#include "driver/network_options.h"
#include "driver/network_state.h"

namespace smv::driver {

struct CreateNetworkCall {
  std::string network_id;
  std::map<std::string, std::string> options;  // com.docker.network.generic
  std::vector<IpData> ipv4;
  std::vector<IpData> ipv6;
  bool internal = false;

  std::vector<IpData> Pools() const { return AllPools(ipv4, ipv6); }  // IPv4 first
};

struct CreateEndpointCall {
  std::string network_id;
  std::string endpoint_id;
  std::string address_v4;  // "192.0.2.10/24"
  std::string address_v6;
  std::string mac;  // "" when dockerd sent none
};

struct CreateEndpointResult {
  std::string mac;  // set only when the request had none
};

struct JoinResult {
  std::string src_name;
  std::string dst_prefix = "eth";
  std::optional<IpAddress> gateway_v4;
  std::optional<IpAddress> gateway_v6;
  std::vector<Route> routes;
};

struct ReconcileReport {
  int vlan_links_recreated = 0;
  int endpoints_dropped = 0;
  int orphan_links_deleted = 0;
  int host_links_recreated = 0;
  // Endpoints removed because their link was back in the host after a Join: the container is
  // gone and its teardown was lost (a crash mid-Join, or the plugin down at a stop). The caller
  // frees their addresses.
  std::vector<EndpointRecord> torn_down;
  // Each repair, lookup or deletion that failed (a link another instance owns is no failure).
  std::vector<std::string> problems;
};

class DriverService {
 public:
  using Clock = std::function<int64_t()>;  // Unix seconds (default smv::UnixSeconds)

  // Loads the stored state; `links` and `store` must outlive the service.
  static Result<std::unique_ptr<DriverService>> Create(nl::LinkOps& links, NetworkStore& store, Clock clock = nullptr);

  // Before the socket opens: repair what the kernel lost of stored networks (parent up, VLAN
  // link, promiscuous mode, host access), drop or tear down endpoints that are gone, and delete
  // our macvlan/ipvlan/host links that no record owns (left by a crash). Problems are reported,
  // not fatal.
  ReconcileReport Reconcile();

  // Decides, after every check of the driver's own and before any kernel change, whether the
  // network may be created (the daemon checks where its addresses come from).
  using Admission = std::function<Status(const NetworkOptions& options)>;
  Status CreateNetwork(const CreateNetworkCall& call, const Admission& admit = nullptr);
  Status DeleteNetwork(const std::string& network_id);  // idempotent
  Result<CreateEndpointResult> CreateEndpoint(const CreateEndpointCall& call);
  Result<JoinResult> Join(const std::string& network_id, const std::string& endpoint_id,
                          const std::string& sandbox_key);
  Status Leave(const std::string& network_id, const std::string& endpoint_id);           // idempotent
  Status DeleteEndpoint(const std::string& network_id, const std::string& endpoint_id);  // idempotent

  // Least privilege: when not empty, networks may only use these parent interfaces.
  void SetAllowedParents(std::vector<std::string> parents) { allowed_parents_ = std::move(parents); }
  // With a reaper, DeleteEndpoint answers before the kernel has finished deleting the link
  // (see link_reaper.h); DeleteNetwork still returns only when its links are gone. Without one
  // (tests), deletion is synchronous. Set before serving; must outlive the service's use.
  void SetLinkReaper(LinkReaper* reaper) { reaper_ = reaper; }
  // With a schedule, each Join announces the container's addresses on the LAN (see
  // announce_schedule.h) as its network's options say. Set before serving; must outlive the service.
  void SetAnnounceSchedule(AnnounceSchedule* schedule) { announce_ = schedule; }

  // Records the container name learned for an endpoint (kept for reconciliation). Idempotent;
  // kNotFound for an unknown endpoint.
  Status SetEndpointName(const std::string& endpoint_id, const std::string& name);
  // One of a joined endpoint's addresses is another's now (a shared book gave it away): the
  // container's link carrying it (the link this instance made on the network's parent, with the
  // endpoint's MAC, carrying the address) is deleted (nl::LinkOps::DeleteContainerLink).
  // kNotFound for an unknown or unjoined endpoint, kInvalidArgument for an address not its own.
  Result<nl::ContainerLinkDeletion> DeleteContainerLinkCarrying(const std::string& endpoint_id,
                                                                const IpAddress& address);
  // Ids of the networks with an IPv4 or IPv6 pool equal to `subnet`.
  std::vector<std::string> NetworksOnSubnet(const Prefix& subnet) const;

  std::optional<NetworkRecord> FindNetwork(const std::string& network_id) const;
  std::vector<NetworkRecord> Networks() const;
  std::optional<EndpointRecord> FindEndpoint(const std::string& endpoint_id) const;
  std::vector<EndpointRecord> Endpoints() const;
  std::optional<LinkRecord> FindLink(const std::string& name) const;

 private:
  struct Network {
    NetworkRecord record;
    NetworkOptions options;
  };

  DriverService(nl::LinkOps& links, NetworkStore& store, Clock clock)
      : links_(links), store_(store), clock_(std::move(clock)) {}
  Status LoadLocked();
  Status CheckAllowedParent(const NetworkOptions& options) const;
  Result<nl::LinkInfo> CheckParentLocked(const NetworkOptions& options);
  // The VLAN link of `options` if it exists and is the right one; an error if the name is taken.
  Result<std::optional<nl::LinkInfo>> CheckVlanLinkLocked(const NetworkOptions& options, const nl::LinkInfo& parent);
  Status EnsureVlanLinkLocked(const NetworkOptions& options, const std::optional<nl::LinkInfo>& existing,
                              DriverBatch& batch, bool& created_now);
  Status CheckOverlapLocked(const CreateNetworkCall& call, const NetworkOptions& options) const;
  int NetworksOnParentLocked(const std::string& parent, const std::string& except_id) const;
  int NetworksOnVlanLinkLocked(const std::string& link, const std::string& except_id) const;
  LinkRecord LinkRecordLocked(const std::string& name) const;
  // Stores an updated endpoint record, then keeps it in memory.
  Status SaveEndpointLocked(const EndpointRecord& record);
  void DeleteVlanIfLastLocked(const Network& network, DriverBatch& batch);
  // The three steps of Reconcile (reconcile.cc); each failed lookup or deletion is a problem in `report`.
  void RepairNetworkLinksLocked(const std::string& id, const NetworkOptions& options, ReconcileReport& report,
                                DriverBatch& batch);
  void RepairVlanLinkLocked(const std::string& id, const NetworkOptions& options, ReconcileReport& report,
                            DriverBatch& batch);
  void RepairHostAccessLocked(const std::string& id, const NetworkOptions& options, ReconcileReport& report);
  void DropDeadEndpointsLocked(ReconcileReport& report, DriverBatch& batch);
  // True when the joined endpoint's link was back in the host and is deleted now.
  bool TearDownIfBackInHostLocked(const EndpointRecord& endpoint, ReconcileReport& report);
  void DeleteOrphanLinksLocked(ReconcileReport& report);
  // Whether a record owns the link `name` (a network's host link, or an endpoint's link).
  bool OwnedLocked(const std::string& name, bool host_link) const;
  void RestorePromiscIfLastLocked(const Network& network, DriverBatch& batch);
  // Stores the endpoint whose link was just created; deletes that link if storing fails.
  Status SaveNewEndpointLocked(const CreateEndpointCall& call, const std::string& link_name, const std::string& mac);
  Result<CreateEndpointResult> CreateIpvlanEndpointLocked(const CreateEndpointCall& call,
                                                          const NetworkOptions& options);
  void AnnounceLocked(const Network& network, const EndpointRecord& endpoint);
  // Host access: the host-side link with host_ip, and a host route to each joined container.
  Status CreateHostLinkLocked(const std::string& network_id, const NetworkOptions& options);
  // OK when there is nothing to route, or the route to delete is gone already.
  Status RouteHostToLocked(const Network& network, const EndpointRecord& endpoint, bool add);

  nl::LinkOps& links_;
  NetworkStore& store_;
  Clock clock_;
  // Guards networks_, endpoints_, link_records_, store writes and the verbs' kernel changes (not a
  // container link's deletion, not the reaper's).
  mutable std::mutex mu_;
  std::map<std::string, Network> networks_;
  std::map<std::string, EndpointRecord> endpoints_;
  std::map<std::string, LinkRecord> link_records_;
  std::vector<std::string> allowed_parents_;  // set before serving, read-only afterwards
  LinkReaper* reaper_ = nullptr;              // set before serving
  AnnounceSchedule* announce_ = nullptr;      // set before serving
};

}  // namespace smv::driver
