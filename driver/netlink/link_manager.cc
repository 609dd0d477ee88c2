#include "driver/netlink/link_manager.h"

#include <linux/if_addr.h>
#include <linux/if_vlan.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <netlink/attr.h>
#include <netlink/msg.h>
#include <netlink/netlink.h>
#include <netlink/route/addr.h>
#include <netlink/route/link.h>
#include <netlink/route/link/ipvlan.h>
#include <netlink/route/link/macvlan.h>
#include <netlink/route/link/veth.h>
#include <netlink/route/link/vlan.h>
#include <netlink/route/route.h>

#include <linux/net_namespace.h>
#include <linux/netlink.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <functional>
#include <memory>
#include <optional>
#include <set>

namespace smv::nl {
namespace {

// Turns a C free function into a unique_ptr deleter with no per-object storage.
template <auto FreeFn>
struct CFree {
  template <typename T>
  void operator()(T* p) const noexcept {
    if (p != nullptr) FreeFn(p);
  }
};
using LinkPtr = std::unique_ptr<rtnl_link, CFree<rtnl_link_put>>;
using CachePtr = std::unique_ptr<nl_cache, CFree<nl_cache_free>>;
using AddrPtr = std::unique_ptr<nl_addr, CFree<nl_addr_put>>;
using RtAddrPtr = std::unique_ptr<rtnl_addr, CFree<rtnl_addr_put>>;
using RoutePtr = std::unique_ptr<rtnl_route, CFree<rtnl_route_put>>;

// libnl returns negative NLE_* codes (not errno): keep the class, add what we were doing.
Status NlStatus(int rc, std::string_view what) {
  Code code = Code::kInternal;
  switch (rc < 0 ? -rc : rc) {
    case NLE_EXIST: code = Code::kAlreadyExists; break;
    case NLE_OBJ_NOTFOUND:
    case NLE_NODEV: code = Code::kNotFound; break;
    case NLE_PERM:
    case NLE_NOACCESS: code = Code::kPermissionDenied; break;
    case NLE_DUMP_INTR:
    case NLE_AGAIN:
    case NLE_BUSY: code = Code::kUnavailable; break;
    case NLE_INVAL:
    case NLE_RANGE: code = Code::kInvalidArgument; break;
  }
  return Status(code, fmt::format("{}: {}", what, nl_geterror(rc)));
}

LinkInfo ToInfo(rtnl_link* link) {
  LinkInfo info;
  info.index = rtnl_link_get_ifindex(link);
  info.name = rtnl_link_get_name(link) ? rtnl_link_get_name(link) : "";
  const char* type = rtnl_link_get_type(link);
  info.kind = type ? type : "";
  info.parent_index = rtnl_link_get_link(link);
  info.mtu = rtnl_link_get_mtu(link);
  const unsigned flags = rtnl_link_get_flags(link);
  info.up = (flags & IFF_UP) != 0;
  constexpr unsigned kLowerUp = 1u << 16;  // IFF_LOWER_UP of linux/if.h, which clashes with net/if.h
  info.carrier = (flags & kLowerUp) != 0;
  info.promisc = (flags & IFF_PROMISC) != 0;
  if (nl_addr* addr = rtnl_link_get_addr(link); addr != nullptr && nl_addr_get_len(addr) == 6) {
    char buf[32] = {};
    nl_addr2str(addr, buf, sizeof buf);
    info.mac = buf;
  }
  if (const char* alias = rtnl_link_get_ifalias(link); alias != nullptr) info.alias = alias;
  if (info.kind == "vlan") {
    info.vlan_id = static_cast<uint16_t>(rtnl_link_vlan_get_id(link));
    info.reorder_hdr = (rtnl_link_vlan_get_flags(link) & VLAN_FLAG_REORDER_HDR) != 0;
  } else if (info.kind == "macvlan") {
    char buf[32] = {};
    rtnl_link_macvlan_mode2str(static_cast<int>(rtnl_link_macvlan_get_mode(link)), buf, sizeof buf);
    info.macvlan_mode = buf;
  } else if (uint16_t mode = 0; info.kind == "ipvlan" && rtnl_link_ipvlan_get_mode(link, &mode) == 0) {
    char buf[32] = {};
    rtnl_link_ipvlan_mode2str(mode, buf, sizeof buf);
    info.macvlan_mode = buf;
  }
  return info;
}

}  // namespace

Result<std::unique_ptr<LinkManager>> LinkManager::Open() {
  nl_sock* sock = nl_socket_alloc();
  if (sock == nullptr) return Internal("allocate netlink socket");
  if (int rc = nl_connect(sock, NETLINK_ROUTE); rc < 0) {
    nl_socket_free(sock);
    return NlStatus(rc, "connect route netlink socket");
  }
  return std::unique_ptr<LinkManager>(new LinkManager(sock));
}

LinkManager::~LinkManager() { nl_socket_free(sock_); }  // also closes the fd

Result<std::optional<LinkInfo>> LinkManager::Find(const std::string& name) {
  std::scoped_lock lock(mu_);
  rtnl_link* raw = nullptr;
  const int rc = rtnl_link_get_kernel(sock_, 0, name.c_str(), &raw);
  if (rc == -NLE_OBJ_NOTFOUND || rc == -NLE_NODEV) return std::optional<LinkInfo>();
  if (rc < 0) return NlStatus(rc, fmt::format("look up interface \"{}\"", name));
  LinkPtr link(raw);
  LinkInfo info = ToInfo(link.get());
  if (info.parent_index != 0) {
    rtnl_link* parent = nullptr;
    if (rtnl_link_get_kernel(sock_, info.parent_index, nullptr, &parent) == 0) {
      LinkPtr owned(parent);
      info.parent_name = rtnl_link_get_name(parent) ? rtnl_link_get_name(parent) : "";
    }
  }
  return std::optional<LinkInfo>(info);
}

Result<std::vector<LinkInfo>> LinkManager::List() {
  std::scoped_lock lock(mu_);
  nl_cache* raw = nullptr;
  int rc = 0;
  // A dump interrupted by a concurrent change is flagged; retry a few times (CNI netlinksafe).
  for (int attempt = 0; attempt < 5; ++attempt) {
    rc = rtnl_link_alloc_cache(sock_, AF_UNSPEC, &raw);
    if (rc != -NLE_DUMP_INTR) break;
  }
  if (rc < 0) return NlStatus(rc, "list interfaces");
  CachePtr cache(raw);
  std::vector<LinkInfo> out;
  for (nl_object* obj = nl_cache_get_first(cache.get()); obj != nullptr; obj = nl_cache_get_next(obj)) {
    out.push_back(ToInfo(reinterpret_cast<rtnl_link*>(obj)));
  }
  for (LinkInfo& info : out) {
    for (const LinkInfo& other : out) {
      if (info.parent_index != 0 && other.index == info.parent_index) info.parent_name = other.name;
    }
  }
  return out;
}

Result<int> LinkManager::IndexOfLocked(const std::string& name) {
  rtnl_link* raw = nullptr;
  const int rc = rtnl_link_get_kernel(sock_, 0, name.c_str(), &raw);
  if (rc == -NLE_OBJ_NOTFOUND || rc == -NLE_NODEV) {
    return NotFound(fmt::format("interface \"{}\" not found", name));
  }
  if (rc < 0) return NlStatus(rc, fmt::format("look up interface \"{}\"", name));
  LinkPtr link(raw);
  return rtnl_link_get_ifindex(link.get());
}

Status LinkManager::CreateVlan(const std::string& parent, uint16_t vlan_id, const std::string& name) {
  std::scoped_lock lock(mu_);
  Result<int> parent_index = IndexOfLocked(parent);
  if (!parent_index.ok()) return parent_index.status();
  LinkPtr vlan(rtnl_link_vlan_alloc());
  if (vlan == nullptr) return Internal("allocate VLAN link object");
  rtnl_link_set_link(vlan.get(), *parent_index);
  rtnl_link_set_name(vlan.get(), name.c_str());
  rtnl_link_vlan_set_id(vlan.get(), vlan_id);
  // REORDER_HDR: what `vconfig set_flag <link> 1 1` did for the seed.
  rtnl_link_vlan_set_flags(vlan.get(), VLAN_FLAG_REORDER_HDR);
  // EXCL: never silently adopt a link that appeared since the caller looked.
  const int rc = rtnl_link_add(sock_, vlan.get(), NLM_F_CREATE | NLM_F_EXCL);
  if (rc == -NLE_OPNOTSUPP) {
    return FailedPrecondition(
        fmt::format("create VLAN link \"{}\" on \"{}\": this kernel has no 802.1Q VLAN support: load the 8021q "
                    "module",
                    name, parent));
  }
  if (rc < 0) return NlStatus(rc, fmt::format("create VLAN link \"{}\" on \"{}\"", name, parent));
  SMV_RETURN_IF_ERROR(TagNewLinkLocked(name, "VLAN link"));
  // Up in a second step: the kernel refuses an up VLAN link on a down parent (ENETDOWN), and
  // that must not leave a half-made link behind.
  if (Status up = ChangeFlagsLocked(name, IFF_UP, 0); !up.ok()) {
    LinkPtr doomed(rtnl_link_alloc());
    rtnl_link_set_name(doomed.get(), name.c_str());
    rtnl_link_delete(sock_, doomed.get());
    return FailedPrecondition(
        fmt::format("bring up VLAN link \"{}\": is the parent interface \"{}\" up? ({})", name, parent, up.message()));
  }
  return OkStatus();
}

Status LinkManager::CreateMacvlan(const MacvlanSpec& spec) {
  std::scoped_lock lock(mu_);
  Result<int> parent_index = IndexOfLocked(spec.parent);
  if (!parent_index.ok()) return parent_index.status();
  LinkPtr link(rtnl_link_macvlan_alloc());
  if (link == nullptr) return Internal("allocate macvlan link object");
  rtnl_link_set_link(link.get(), *parent_index);
  rtnl_link_set_name(link.get(), spec.name.c_str());
  const int mode = rtnl_link_macvlan_str2mode(spec.mode.c_str());
  if (mode < 0) return InvalidArgument(fmt::format("unknown macvlan mode \"{}\"", spec.mode));
  rtnl_link_macvlan_set_mode(link.get(), static_cast<uint32_t>(mode));
  if (spec.mtu != 0) rtnl_link_set_mtu(link.get(), spec.mtu);
  if (!spec.mac.empty()) {
    nl_addr* raw = nullptr;
    if (int rc = nl_addr_parse(spec.mac.c_str(), AF_LLC, &raw); rc < 0) {
      return NlStatus(rc, fmt::format("parse MAC address \"{}\"", spec.mac));
    }
    AddrPtr addr(raw);
    rtnl_link_set_addr(link.get(), addr.get());
  }
  const int rc = rtnl_link_add(sock_, link.get(), NLM_F_CREATE | NLM_F_EXCL);
  if (rc < 0) {
    return NlStatus(rc,
                    fmt::format("create macvlan link \"{}\" (mode {}) on \"{}\"", spec.name, spec.mode, spec.parent));
  }
  return TagNewLinkLocked(spec.name, "macvlan link");
}

Status LinkManager::CreateIpvlan(const std::string& name, const std::string& parent, const std::string& mode,
                                 uint32_t mtu) {
  std::scoped_lock lock(mu_);
  Result<int> parent_index = IndexOfLocked(parent);
  if (!parent_index.ok()) return parent_index.status();
  LinkPtr link(rtnl_link_ipvlan_alloc());
  if (link == nullptr) return Internal("allocate ipvlan link object");
  rtnl_link_set_link(link.get(), *parent_index);
  rtnl_link_set_name(link.get(), name.c_str());
  const int mode_value = rtnl_link_ipvlan_str2mode(mode.c_str());
  if (mode_value < 0) return InvalidArgument(fmt::format("ipvlan mode \"{}\": want l2 or l3", mode));
  if (int rc = rtnl_link_ipvlan_set_mode(link.get(), static_cast<uint16_t>(mode_value)); rc < 0) {
    return NlStatus(rc, "set ipvlan mode");
  }
  if (mtu != 0) rtnl_link_set_mtu(link.get(), mtu);
  const int rc = rtnl_link_add(sock_, link.get(), NLM_F_CREATE | NLM_F_EXCL);
  if (rc < 0) {
    Status failed = NlStatus(rc, fmt::format("create ipvlan link \"{}\" (mode {}) on \"{}\"", name, mode, parent));
    // A kernel without ipvlan answers "operation not supported": say what is missing.
    if (rc == -NLE_OPNOTSUPP)
      return FailedPrecondition(failed.message() + ": this kernel has no ipvlan (module ipvlan)");
    return failed;
  }
  return TagNewLinkLocked(name, "ipvlan link");
}

Status LinkManager::TagNewLinkLocked(const std::string& name, std::string_view what) {
  if (owner_tag_.empty()) return OkStatus();
  rtnl_link* raw = nullptr;
  int rc = rtnl_link_get_kernel(sock_, 0, name.c_str(), &raw);
  if (rc == 0) {
    LinkPtr made(raw);
    LinkPtr change(rtnl_link_alloc());
    if (change == nullptr) return Internal("allocate link object");
    rtnl_link_set_ifalias(change.get(), owner_tag_.c_str());
    rc = rtnl_link_change(sock_, made.get(), change.get(), 0);
  }
  if (rc < 0) {
    LinkPtr doomed(rtnl_link_alloc());
    rtnl_link_set_name(doomed.get(), name.c_str());
    rtnl_link_delete(sock_, doomed.get());
    return NlStatus(rc, fmt::format("tag {} \"{}\" with its owner \"{}\"", what, name, owner_tag_));
  }
  return OkStatus();
}

Status LinkManager::Delete(const std::string& name) {
  std::scoped_lock lock(mu_);
  LinkPtr link(rtnl_link_alloc());
  if (link == nullptr) return Internal("allocate link object");
  if (owner_tag_.empty()) {
    rtnl_link_set_name(link.get(), name.c_str());
  } else {
    // Read the tag first, then delete that very link (by index, not by a name that could change hands).
    rtnl_link* raw = nullptr;
    if (int rc = rtnl_link_get_kernel(sock_, 0, name.c_str(), &raw); rc < 0) {
      return NlStatus(rc, fmt::format("delete interface \"{}\"", name));
    }
    LinkPtr found(raw);
    const char* alias = rtnl_link_get_ifalias(found.get());
    if (alias != nullptr && TaggedByAnother(alias, owner_tag_)) {
      return FailedPrecondition(fmt::format(
          "interface \"{}\" left alone: it belongs to another static-macvlan instance (its alias is \"{}\", "
          "this instance's \"{}\")",
          name, alias, owner_tag_));
    }
    rtnl_link_set_ifindex(link.get(), rtnl_link_get_ifindex(found.get()));
  }
  const int rc = rtnl_link_delete(sock_, link.get());
  if (rc < 0) return NlStatus(rc, fmt::format("delete interface \"{}\"", name));
  return OkStatus();
}

Status LinkManager::ChangeFlagsLocked(const std::string& name, unsigned set, unsigned clear) {
  rtnl_link* raw = nullptr;
  if (int rc = rtnl_link_get_kernel(sock_, 0, name.c_str(), &raw); rc < 0) {
    return NlStatus(rc, fmt::format("look up interface \"{}\"", name));
  }
  LinkPtr orig(raw);
  LinkPtr change(rtnl_link_alloc());
  if (change == nullptr) return Internal("allocate link object");
  if (set != 0) rtnl_link_set_flags(change.get(), set);
  if (clear != 0) rtnl_link_unset_flags(change.get(), clear);
  if (int rc = rtnl_link_change(sock_, orig.get(), change.get(), 0); rc < 0) {
    return NlStatus(rc, fmt::format("change flags of interface \"{}\"", name));
  }
  return OkStatus();
}

Status LinkManager::SetPromisc(const std::string& name, bool on) {
  std::scoped_lock lock(mu_);
  return on ? ChangeFlagsLocked(name, IFF_PROMISC, 0) : ChangeFlagsLocked(name, 0, IFF_PROMISC);
}

Status LinkManager::SetUp(const std::string& name) {
  std::scoped_lock lock(mu_);
  return ChangeFlagsLocked(name, IFF_UP, 0);
}

namespace {

// `address` as a host prefix (/32, /128) in libnl's form.
Result<AddrPtr> HostPrefix(const IpAddress& address) {
  nl_addr* raw = nullptr;
  const std::string text = fmt::format("{}/{}", address.ToString(), address.bits());
  if (int rc = nl_addr_parse(text.c_str(), address.is_v4() ? AF_INET : AF_INET6, &raw); rc < 0) {
    return NlStatus(rc, fmt::format("parse address \"{}\"", text));
  }
  return AddrPtr(raw);
}

Status WriteSysctl(const std::string& path, std::string_view value) {
  std::ofstream out(path);
  out << value;
  out.close();
  if (!out) return Internal(fmt::format("write {} to {}", value, path));
  return OkStatus();
}

Result<RoutePtr> HostRouteVia(const IpAddress& address, int index) {
  Result<AddrPtr> dst = HostPrefix(address);
  if (!dst.ok()) return dst.status();
  RoutePtr route(rtnl_route_alloc());
  rtnl_nexthop* hop = rtnl_route_nh_alloc();
  if (route == nullptr || hop == nullptr) return Internal("allocate route object");
  rtnl_route_set_family(route.get(), address.is_v4() ? AF_INET : AF_INET6);
  rtnl_route_set_table(route.get(), RT_TABLE_MAIN);
  rtnl_route_set_protocol(route.get(), RTPROT_STATIC);
  rtnl_route_set_scope(route.get(), RT_SCOPE_LINK);
  rtnl_route_set_type(route.get(), RTN_UNICAST);
  rtnl_route_set_dst(route.get(), dst->get());
  rtnl_route_nh_set_ifindex(hop, index);
  rtnl_route_add_nexthop(route.get(), hop);  // the route owns it now
  return route;
}

}  // namespace

Status LinkManager::TuneHostLink(const std::string& name) {
  const std::string conf = net_sysctl_dir_ + "/ipv4/conf/" + name + "/";
  // ARP flux: the host link answers ARP only for its own address (arp_ignore=1) and uses it as
  // the source of its own requests (arp_announce=2), never the host's other addresses.
  SMV_RETURN_IF_ERROR(WriteSysctl(conf + "arp_ignore", "1"));
  SMV_RETURN_IF_ERROR(WriteSysctl(conf + "arp_announce", "2"));
  // Loose reverse-path filtering: LAN hosts may reach host_ip through this link while their
  // return route goes through the parent; strict filtering would drop them.
  return WriteSysctl(conf + "rp_filter", "2");
}

Status LinkManager::AddHostAddress(const std::string& link, const IpAddress& address) {
  std::scoped_lock lock(mu_);
  Result<int> index = IndexOfLocked(link);
  if (!index.ok()) return index.status();
  Result<AddrPtr> local = HostPrefix(address);
  if (!local.ok()) return local.status();
  RtAddrPtr addr(rtnl_addr_alloc());
  if (addr == nullptr) return Internal("allocate address object");
  rtnl_addr_set_ifindex(addr.get(), *index);
  rtnl_addr_set_local(addr.get(), local->get());
  if (!address.is_v4()) rtnl_addr_set_flags(addr.get(), IFA_F_NODAD);  // usable at once
  const int rc = rtnl_addr_add(sock_, addr.get(), NLM_F_CREATE | NLM_F_EXCL);
  if (rc < 0 && rc != -NLE_EXIST) return NlStatus(rc, fmt::format("add {} to \"{}\"", address.ToString(), link));
  return OkStatus();
}

Status LinkManager::AddHostRoute(const IpAddress& address, const std::string& link) {
  return ChangeHostRoute(address, link, true);
}

Status LinkManager::DeleteHostRoute(const IpAddress& address, const std::string& link) {
  return ChangeHostRoute(address, link, false);
}

Status LinkManager::ChangeHostRoute(const IpAddress& address, const std::string& link, bool add) {
  std::scoped_lock lock(mu_);
  Result<int> index = IndexOfLocked(link);
  if (!index.ok()) return index.status();
  Result<RoutePtr> route = HostRouteVia(address, *index);
  if (!route.ok()) return route.status();
  // EXCL: never replace a route of the host's own; one through this link already is fine.
  const int rc =
      add ? rtnl_route_add(sock_, route->get(), NLM_F_CREATE | NLM_F_EXCL) : rtnl_route_delete(sock_, route->get(), 0);
  if (rc < 0 && !(add && rc == -NLE_EXIST)) {
    return NlStatus(rc, fmt::format("{} route {} dev {}", add ? "add" : "delete", address.ToString(), link));
  }
  return OkStatus();
}

namespace {

// `address` in network byte order, as the kernel sends it.
std::vector<unsigned char> AddressBytes(const IpAddress& address) {
  std::vector<unsigned char> out(static_cast<size_t>(address.bits() / 8));
  Uint128 value = address.value();
  for (auto it = out.rbegin(); it != out.rend(); ++it) {
    *it = static_cast<unsigned char>(value & 0xff);
    value >>= 8;
  }
  return out;
}

// DeleteContainerLink speaks rtnetlink through libnl's message layer: libnl's link and address
// objects cannot name another namespace (a target netnsid).
using MsgPtr = std::unique_ptr<nl_msg, CFree<nlmsg_free>>;
using CallbackPtr = std::unique_ptr<nl_cb, CFree<nl_cb_put>>;
using OnAnswer = std::function<void(nlmsghdr*)>;
template <typename T>
using Parse = std::function<std::optional<T>(nlmsghdr*)>;

int PassAnswer(nl_msg* msg, void* on_answer) {
  (*static_cast<OnAnswer*>(on_answer))(nlmsg_hdr(msg));
  return NL_OK;
}

// A dump's error arrives in its NLMSG_DONE, which libnl does not read: kept here.
int KeepDumpError(nl_msg* msg, void* error) {
  nlmsghdr* hdr = nlmsg_hdr(msg);
  if (hdr->nlmsg_len >= NLMSG_LENGTH(sizeof(int))) *static_cast<int*>(error) = *static_cast<int*>(nlmsg_data(hdr));
  return NL_STOP;
}

// A request of `type` with its fixed header and, when `nsid` is set, the target netnsid `attr`.
template <typename Header>
MsgPtr Request(int type, int flags, Header header, int attr = 0, std::optional<int32_t> nsid = std::nullopt) {
  MsgPtr msg(nlmsg_alloc_simple(type, flags));
  if (msg == nullptr || nlmsg_append(msg.get(), &header, sizeof header, NLMSG_ALIGNTO) < 0) return nullptr;
  if (nsid && nla_put_s32(msg.get(), attr, *nsid) < 0) return nullptr;
  return msg;
}

// Sends what `build` makes and keeps what `parse` makes of each answer. A dump a concurrent change
// interrupted is asked again (as List); a dump naming a netnsid that is no namespace (any more) is
// kNotFound.
template <typename T>
Result<std::vector<T>> Ask(nl_sock* sock, const std::function<MsgPtr()>& build, const Parse<T>& parse,
                           const std::string& what) {
  int rc = 0;
  for (int attempt = 0; attempt < 5; ++attempt) {
    std::vector<T> answers;
    OnAnswer collect = [&](nlmsghdr* hdr) {
      if (std::optional<T> answer = parse(hdr)) answers.push_back(std::move(*answer));
    };
    int dump_error = 0;
    CallbackPtr callbacks(nl_cb_alloc(NL_CB_DEFAULT));
    MsgPtr request = build();
    if (callbacks == nullptr || request == nullptr) return Internal(what + ": out of memory");
    nl_cb_set(callbacks.get(), NL_CB_VALID, NL_CB_CUSTOM, PassAnswer, &collect);
    nl_cb_set(callbacks.get(), NL_CB_FINISH, NL_CB_CUSTOM, KeepDumpError, &dump_error);
    const bool dump = (nlmsg_hdr(request.get())->nlmsg_flags & NLM_F_DUMP) == NLM_F_DUMP;
    rc = nl_send_auto(sock, request.get());  // asks for an ACK too (libnl's auto-ack)
    if (rc >= 0) rc = nl_recvmsgs(sock, callbacks.get());
    // A dump ends with NLMSG_DONE; a single answer is followed by the ACK, read here so that the
    // next request's answers are not taken for this one's.
    if (rc >= 0 && !dump) rc = nl_wait_for_ack(sock);
    if (rc == -NLE_DUMP_INTR) continue;
    if (rc < 0) return NlStatus(rc, what);
    if (dump_error == -EINVAL) return NotFound(what + ": no such network namespace (any more)");
    if (dump_error == -EPERM || dump_error == -EACCES) {
      return PermissionDenied(fmt::format("{}: {} (needs CAP_NET_ADMIN)", what, std::strerror(-dump_error)));
    }
    if (dump_error < 0) return Internal(fmt::format("{}: {}", what, std::strerror(-dump_error)));
    return answers;
  }
  return NlStatus(rc, what);
}

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
  const ifaddrmsg header{.ifa_family = static_cast<uint8_t>(address.is_v4() ? AF_INET : AF_INET6)};
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
  rtnl_link* raw = nullptr;
  if (int rc = rtnl_link_get_kernel(sock_, 0, parent.c_str(), &raw); rc < 0) {
    // No parent here, no link of ours on it anywhere: nothing to match.
    if (rc == -NLE_NODEV || rc == -NLE_OBJ_NOTFOUND) return ContainerLinkDeletion::kNoNamespace;
    return NlStatus(rc, fmt::format("find parent interface \"{}\"", parent));
  }
  const int parent_index = rtnl_link_get_ifindex(LinkPtr(raw).get());
  StrictChecking strict(sock_);
  if (!strict.on()) {
    return FailedPrecondition(fmt::format(
        "take {} off the wire in a container: this kernel cannot list another network namespace's addresses "
        "(NETLINK_GET_STRICT_CHK: {}); Linux 4.20 or later can",
        address.ToString(), std::strerror(errno)));
  }
  Result<std::vector<int32_t>> peers = PeerNamespaceIds(sock_);
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
  Result<std::vector<PeerLink>> links = LinksIn(sock_, nsid);
  if (!links.ok())
    return links.status().code() == Code::kNotFound ? Result<PeerOutcome>(PeerOutcome{}) : links.status();
  // After that dump this namespace has an id in itself, the one a link hanging on our parent names.
  Result<std::vector<int32_t>> own = OwnNamespaceId(sock_);
  if (!own.ok()) return own.status();
  std::erase_if(*links, [&](const PeerLink& l) {
    const bool on_our_parent = l.parent == match.parent_index && l.parent_netnsid &&
                               std::find(own->begin(), own->end(), *l.parent_netnsid) != own->end();
    const bool made_here = owner_tag_.empty() || l.alias == owner_tag_;
    return l.mac != match.mac || !made_here || !on_our_parent;
  });
  if (links->empty()) return PeerOutcome{};
  Result<std::set<int>> carriers = IndexesCarrying(sock_, nsid, match.address);
  if (!carriers.ok())
    return carriers.status().code() == Code::kNotFound ? Result<PeerOutcome>(PeerOutcome{}) : carriers.status();
  PeerOutcome outcome{.has_mac = true};
  for (const PeerLink& link : *links) {
    if (!carriers->contains(link.index)) continue;
    // By index, never by name: RTM_DELLINK looks a name up in the caller's own namespace whatever
    // the target. The kernel that answered the address dump above (4.20+) honours the target here.
    MsgPtr request = Request(RTM_DELLINK, NLM_F_ACK, ifinfomsg{.ifi_index = link.index}, IFLA_TARGET_NETNSID, nsid);
    if (request == nullptr) return Internal("allocate netlink message");
    const int rc = nl_send_sync(sock_, request.release());                          // frees the message
    if (rc == -NLE_NODEV || rc == -NLE_OBJ_NOTFOUND || rc == -NLE_INVAL) continue;  // gone meanwhile, or its namespace
    if (rc < 0) return NlStatus(rc, fmt::format("delete interface {} in network namespace {}", link.index, nsid));
    outcome.deleted = true;
  }
  return outcome;
}

Status LinkManager::CreateVethPair(const std::string& name, const std::string& peer) {
  std::scoped_lock lock(mu_);
  if (int rc = rtnl_link_veth_add(sock_, name.c_str(), peer.c_str(), getpid()); rc < 0) {
    return NlStatus(rc, fmt::format("create veth pair \"{}\"/\"{}\"", name, peer));
  }
  return OkStatus();
}

}  // namespace smv::nl
