#pragma once
// LinkOps on the kernel through libnl (route netlink). One netlink socket, bound to the network
// namespace the manager was opened in; calls are serialized by a mutex.
//
// The implementation is split by concern: netlink_plumbing.cc (the socket, errors, asking and
// parsing), link_manager.cc (look-up, list, flags, delete), link_create.cc (the Create* verbs and
// the owner tag), host_links.cc (host addresses, routes, sysctls) and container_links.cc (the
// search of the other network namespaces for DeleteContainerLink).

#include <cstdint>
#include <memory>
#include <mutex>

#include "driver/netlink/link_ops.h"

struct nl_sock;

namespace smv::nl {

// Frees a libnl socket (and closes its fd).
struct NlSocketFree {
  void operator()(nl_sock* sock) const noexcept;
};
using NlSocket = std::unique_ptr<nl_sock, NlSocketFree>;

class LinkManager : public LinkOps {
 public:
  // Opens a route netlink socket in the calling thread's network namespace.
  static Result<std::unique_ptr<LinkManager>> Open();
  ~LinkManager() override;

  Result<std::optional<LinkInfo>> Find(const std::string& name) override;
  Result<std::vector<LinkInfo>> List() override;
  Status CreateVlan(const std::string& parent, uint16_t vlan_id, const std::string& name) override;
  Status CreateMacvlan(const MacvlanSpec& spec) override;
  Status CreateIpvlan(const std::string& name, const std::string& parent, const std::string& mode,
                      uint32_t mtu) override;
  Status Delete(const std::string& name) override;
  Status SetPromisc(const std::string& name, bool on) override;
  Status SetUp(const std::string& name) override;
  Status TuneHostLink(const std::string& name) override;
  Status AddHostAddress(const std::string& link, const IpAddress& address) override;
  Status AddHostRoute(const IpAddress& address, const std::string& link) override;
  Status DeleteHostRoute(const IpAddress& address, const std::string& link) override;
  Result<ContainerLinkDeletion> DeleteContainerLink(const std::string& mac, const IpAddress& address,
                                                    const std::string& parent) override;

  // Where the network sysctls are (default /proc/sys/net): a managed plugin's /proc/sys is
  // read-only, so its config mounts the host's /proc/sys/net elsewhere.
  void SetNetSysctlDir(std::string dir) { net_sysctl_dir_ = std::move(dir); }
  // The owner tag (link_ops.h) this manager puts on the links it creates and checks before a
  // deletion; "" (the default): no tag, no check. Set before use.
  void SetOwnerTag(std::string tag) { owner_tag_ = std::move(tag); }
  const std::string& owner_tag() const { return owner_tag_; }

 protected:
  // A route netlink socket in the calling thread's network namespace (tests derive from this
  // class to add what only tests do: tests/support/netns_test.h).
  static Result<NlSocket> OpenSocket();
  explicit LinkManager(NlSocket sock);

 private:
  Result<int> IndexOfLocked(const std::string& name);
  Status ChangeFlagsLocked(const std::string& name, unsigned set, unsigned clear);
  Status ChangeHostRoute(const IpAddress& address, const std::string& link, bool add);
  // Deletes the link named `name`, best effort (a rollback of a half-made link).
  void DeleteByNameLocked(const std::string& name);
  struct PeerOutcome {
    bool has_mac = false;
    bool deleted = false;
  };
  struct PeerMatch {
    std::string mac;
    IpAddress address;
    int parent_index = 0;  // in the caller's namespace
  };
  // DeleteContainerLink's work in the namespace of netnsid `nsid`: whether a link of ours on the
  // parent with match.mac is there (has_mac), and whether one carrying match.address was deleted.
  Result<PeerOutcome> DeleteCarrierInPeerLocked(int32_t nsid, const PeerMatch& match);
  // Whether a link of a peer namespace, with `alias`, is one this instance made.
  bool MadeHere(const std::string& alias) const { return owner_tag_.empty() || alias == owner_tag_; }
  // Puts the owner tag on the link just created as `name`; deletes the link if that fails (the
  // kernel takes no alias in a create request, hence this second step).
  Status TagNewLinkLocked(const std::string& name, std::string_view what);

  std::mutex mu_;  // guards sock_ (a libnl socket is not thread-safe)
  NlSocket sock_;
  std::string net_sysctl_dir_ = "/proc/sys/net";
  std::string owner_tag_;
};

}  // namespace smv::nl
