// LinkManager::DeleteContainerLink: the search of the other network namespaces (those the
// caller's knows by a netnsid) for the link of ours that carries an address, and its deletion.

#include <linux/net_namespace.h>
#include <linux/rtnetlink.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <set>

#include "driver/netlink/link_manager.h"
#include "netlink_plumbing.h"

namespace smv::nl {
namespace {

std::optional<int32_t> ParseNsid(nlmsghdr* hdr) {
  nlattr* tb[NETNSA_MAX + 1] = {};
  if (nlmsg_parse(hdr, sizeof(rtgenmsg), tb, NETNSA_MAX, nullptr) < 0 || tb[NETNSA_NSID] == nullptr) {
    return std::nullopt;
  }
  return nla_get_s32(tb[NETNSA_NSID]);
}

// The id the namespace of `sock` has for itself (none before a dump of a peer's links gave it one:
// IFLA_LINK_NETNSID of a link whose parent is here). The daemon's process is in its sockets' namespace.
Result<std::vector<int32_t>> OwnNamespaceId(nl_sock* sock) {
  const rtgenmsg header{.rtgen_family = AF_UNSPEC};
  return Ask<int32_t>(
      sock,
      [&] {
        MsgPtr msg = Request(RTM_GETNSID, 0, header);
        if (msg != nullptr && nla_put_u32(msg.get(), NETNSA_PID, static_cast<uint32_t>(getpid())) < 0) return MsgPtr();
        return msg;
      },
      ParseNsid, "look up the id of this network namespace");
}

// The netnsids the namespace of `sock` has for other namespaces (RTM_GETNSID). Its own id is left
// out: a dump of a peer's links gives the caller's namespace an id in itself (IFLA_LINK_NETNSID).
Result<std::vector<int32_t>> PeerNamespaceIds(nl_sock* sock) {
  const rtgenmsg header{.rtgen_family = AF_UNSPEC};
  Result<std::vector<int32_t>> ids = Ask<int32_t>(
      sock, [&] { return Request(RTM_GETNSID, NLM_F_DUMP, header); }, ParseNsid,
      "list the ids of other network namespaces");
  if (!ids.ok()) return ids;
  Result<std::vector<int32_t>> own = OwnNamespaceId(sock);
  if (!own.ok()) return own;
  std::erase_if(*ids, [&](int32_t id) { return id < 0 || std::find(own->begin(), own->end(), id) != own->end(); });
  return ids;
}

struct PeerLink {
  int index = 0;
  std::string mac;  // as MacAddress::ToString
  std::string alias;
  int parent = 0;                         // IFLA_LINK: the lower link's index (macvlan, ipvlan)
  std::optional<int32_t> parent_netnsid;  // IFLA_LINK_NETNSID: where that index is (none: here)
};

// A link of the namespace `nsid`, from a dump that named it. A kernel that ignored the target
// would list the caller's own links: only answers carrying the target count.
std::optional<PeerLink> ParsePeerLink(nlmsghdr* hdr, int32_t nsid) {
  nlattr* tb[IFLA_MAX + 1] = {};
  if (nlmsg_parse(hdr, sizeof(ifinfomsg), tb, IFLA_MAX, nullptr) < 0) return std::nullopt;
  if (tb[IFLA_TARGET_NETNSID] == nullptr || nla_get_s32(tb[IFLA_TARGET_NETNSID]) != nsid) return std::nullopt;
  PeerLink link{.index = static_cast<ifinfomsg*>(nlmsg_data(hdr))->ifi_index};
  if (tb[IFLA_ADDRESS] != nullptr && nla_len(tb[IFLA_ADDRESS]) == 6) {
    std::array<uint8_t, 6> bytes{};
    std::memcpy(bytes.data(), nla_data(tb[IFLA_ADDRESS]), bytes.size());
    link.mac = MacAddress(bytes).ToString();
  }
  if (tb[IFLA_IFALIAS] != nullptr) link.alias = nla_get_string(tb[IFLA_IFALIAS]);
  if (tb[IFLA_LINK] != nullptr) link.parent = static_cast<int>(nla_get_u32(tb[IFLA_LINK]));
  if (tb[IFLA_LINK_NETNSID] != nullptr) link.parent_netnsid = nla_get_s32(tb[IFLA_LINK_NETNSID]);
  return link;
}

Result<std::vector<PeerLink>> LinksIn(nl_sock* sock, int32_t nsid) {
  return Ask<PeerLink>(
      sock, [&] { return Request(RTM_GETLINK, NLM_F_DUMP, ifinfomsg{}, IFLA_TARGET_NETNSID, nsid); },
      [&](nlmsghdr* hdr) { return ParsePeerLink(hdr, nsid); },
      fmt::format("list the interfaces of network namespace {}", nsid));
}

// The indexes of the links of namespace `nsid` that carry `address` (only answers naming the target
// count, as in ParsePeerLink).
Result<std::set<int>> IndexesCarrying(nl_sock* sock, int32_t nsid, const IpAddress& address) {
  const ifaddrmsg header{.ifa_family = static_cast<uint8_t>(AddressFamily(address))};
  const std::vector<unsigned char> want = AddressBytes(address);
  const Parse<int> carrier = [&](nlmsghdr* hdr) -> std::optional<int> {
    nlattr* tb[IFA_MAX + 1] = {};
    if (nlmsg_parse(hdr, sizeof(ifaddrmsg), tb, IFA_MAX, nullptr) < 0) return std::nullopt;
    if (tb[IFA_TARGET_NETNSID] == nullptr || nla_get_s32(tb[IFA_TARGET_NETNSID]) != nsid) return std::nullopt;
    nlattr* local = tb[IFA_LOCAL] != nullptr ? tb[IFA_LOCAL] : tb[IFA_ADDRESS];  // IPv6: IFA_ADDRESS only
    if (local == nullptr || static_cast<size_t>(nla_len(local)) != want.size() ||
        std::memcmp(nla_data(local), want.data(), want.size()) != 0) {
      return std::nullopt;
    }
    return static_cast<int>(static_cast<ifaddrmsg*>(nlmsg_data(hdr))->ifa_index);
  };
  Result<std::vector<int>> found = Ask<int>(
      sock, [&] { return Request(RTM_GETADDR, NLM_F_DUMP, header, IFA_TARGET_NETNSID, nsid); }, carrier,
      fmt::format("list the addresses of network namespace {}", nsid));
  if (!found.ok()) return found.status();
  return std::set<int>(found->begin(), found->end());
}

// Address dumps honour IFA_TARGET_NETNSID only with strict checking (Linux 4.20 and later); without
// it they answer for the caller's own namespace. On for DeleteContainerLink only: libnl's own
// address dumps send a short header that strict checking refuses.
class StrictChecking {
 public:
  explicit StrictChecking(nl_sock* sock) : fd_(nl_socket_get_fd(sock)) {
    const int on = 1;
    on_ = setsockopt(fd_, SOL_NETLINK, NETLINK_GET_STRICT_CHK, &on, sizeof on) == 0;
  }
  StrictChecking(const StrictChecking&) = delete;
  StrictChecking& operator=(const StrictChecking&) = delete;
  ~StrictChecking() {
    const int off = 0;
    if (on_) setsockopt(fd_, SOL_NETLINK, NETLINK_GET_STRICT_CHK, &off, sizeof off);
  }
  bool on() const { return on_; }

 private:
  int fd_;
  bool on_ = false;
};

}  // namespace

// What rtnetlink does with another namespace's netnsid (checked on Linux 6.18; the VM tier runs the
// netns tests on 6.1): RTM_GETLINK dumps and RTM_DELLINK honour IFLA_TARGET_NETNSID; RTM_GETADDR dumps
// honour IFA_TARGET_NETNSID with strict checking only. RTM_SETLINK and RTM_NEWLINK look the link up in
// the caller's namespace and read the target as where to move it, and RTM_DELADDR ignores the target:
// setting a container's link down or taking its address away that way would act on the host's own
// links. Deleting the link is the one change that reaches into the container without setns.
Result<ContainerLinkDeletion> LinkManager::DeleteContainerLink(const std::string& mac, const IpAddress& address,
                                                               const std::string& parent) {
  const std::optional<MacAddress> want = MacAddress::Parse(mac);
  if (!want) return InvalidArgument(fmt::format("invalid MAC address \"{}\"", mac));
  std::scoped_lock lock(mu_);
  int rc = 0;
  LinkPtr parent_link = GetLink(sock_.get(), parent, rc);
  // No parent here, no link of ours on it anywhere: nothing to match.
  if (IsNoSuchLink(rc)) return ContainerLinkDeletion::kNoNamespace;
  if (rc < 0) return NlStatus(rc, fmt::format("find parent interface \"{}\"", parent));
  const int parent_index = rtnl_link_get_ifindex(parent_link.get());
  StrictChecking strict(sock_.get());
  if (!strict.on()) {
    return FailedPrecondition(fmt::format(
        "take {} off the wire in a container: this kernel cannot list another network namespace's addresses "
        "(NETLINK_GET_STRICT_CHK: {}); Linux 4.20 or later can",
        address.ToString(), std::strerror(errno)));
  }
  Result<std::vector<int32_t>> peers = PeerNamespaceIds(sock_.get());
  if (!peers.ok()) return peers.status();
  bool has_mac = false;
  bool deleted = false;
  Status failed;  // a namespace that could not be searched does not stop the search of the others
  for (int32_t nsid : *peers) {
    Result<PeerOutcome> peer = DeleteCarrierInPeerLocked(nsid, {want->ToString(), address, parent_index});
    if (!peer.ok()) {
      if (failed.ok()) failed = peer.status();
      continue;
    }
    has_mac = has_mac || peer->has_mac;
    deleted = deleted || peer->deleted;
  }
  if (deleted) return ContainerLinkDeletion::kDeleted;
  if (!failed.ok()) return failed;  // the link may be in the namespace that failed: not "stopped"
  return has_mac ? ContainerLinkDeletion::kNoSuchLink : ContainerLinkDeletion::kNoNamespace;
}

Result<LinkManager::PeerOutcome> LinkManager::DeleteCarrierInPeerLocked(int32_t nsid, const PeerMatch& match) {
  Result<std::vector<PeerLink>> links = LinksIn(sock_.get(), nsid);
  if (!links.ok())
    return links.status().code() == Code::kNotFound ? Result<PeerOutcome>(PeerOutcome{}) : links.status();
  // After that dump this namespace has an id in itself, the one a link hanging on our parent names.
  Result<std::vector<int32_t>> own = OwnNamespaceId(sock_.get());
  if (!own.ok()) return own.status();
  std::erase_if(*links, [&](const PeerLink& l) {
    const bool on_our_parent = l.parent == match.parent_index && l.parent_netnsid &&
                               std::find(own->begin(), own->end(), *l.parent_netnsid) != own->end();
    return l.mac != match.mac || !MadeHere(l.alias) || !on_our_parent;
  });
  if (links->empty()) return PeerOutcome{};
  Result<std::set<int>> carriers = IndexesCarrying(sock_.get(), nsid, match.address);
  if (!carriers.ok())
    return carriers.status().code() == Code::kNotFound ? Result<PeerOutcome>(PeerOutcome{}) : carriers.status();
  PeerOutcome outcome{.has_mac = true};
  for (const PeerLink& link : *links) {
    if (!carriers->contains(link.index)) continue;
    // By index, never by name: RTM_DELLINK looks a name up in the caller's own namespace whatever
    // the target. The kernel that answered the address dump above (4.20+) honours the target here.
    MsgPtr request = Request(RTM_DELLINK, NLM_F_ACK, ifinfomsg{.ifi_index = link.index}, IFLA_TARGET_NETNSID, nsid);
    if (request == nullptr) return Internal("allocate netlink message");
    const int rc = nl_send_sync(sock_.get(), request.release());                    // frees the message
    if (rc == -NLE_NODEV || rc == -NLE_OBJ_NOTFOUND || rc == -NLE_INVAL) continue;  // gone meanwhile, or its namespace
    if (rc < 0) return NlStatus(rc, fmt::format("delete interface {} in network namespace {}", link.index, nsid));
    outcome.deleted = true;
  }
  return outcome;
}

}  // namespace smv::nl
