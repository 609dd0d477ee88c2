// LinkManager's plumbing: the socket, libnl errors, a link as LinkInfo, one request and its answers.

#include "netlink_plumbing.h"

#include <linux/if_vlan.h>
#include <net/if.h>
#include <netlink/route/link/ipvlan.h>
#include <netlink/route/link/macvlan.h>
#include <netlink/route/link/vlan.h>

#include <cerrno>
#include <cstring>

#include "driver/netlink/link_manager.h"

namespace smv::nl {
namespace {

int PassAnswer(nl_msg* msg, void* on_answer) {
  (*static_cast<const OnAnswer*>(on_answer))(nlmsg_hdr(msg));
  return NL_OK;
}

int KeepDumpError(nl_msg* msg, void* error) {
  nlmsghdr* hdr = nlmsg_hdr(msg);
  if (hdr->nlmsg_len >= NLMSG_LENGTH(sizeof(int))) *static_cast<int*>(error) = *static_cast<int*>(nlmsg_data(hdr));
  return NL_STOP;
}

using CallbackPtr = std::unique_ptr<nl_cb, CFree<nl_cb_put>>;

// The mode of an ipvlan or macvlan link as `ip` spells it ("" for other kinds).
std::string ModeOf(rtnl_link* link, const std::string& kind) {
  char buf[32] = {};
  if (kind == "macvlan") {
    rtnl_link_macvlan_mode2str(static_cast<int>(rtnl_link_macvlan_get_mode(link)), buf, sizeof buf);
  } else if (uint16_t mode = 0; kind == "ipvlan" && rtnl_link_ipvlan_get_mode(link, &mode) == 0) {
    rtnl_link_ipvlan_mode2str(mode, buf, sizeof buf);
  }
  return buf;
}

}  // namespace

void NlSocketFree::operator()(nl_sock* sock) const noexcept {
  if (sock != nullptr) nl_socket_free(sock);  // also closes the fd
}

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
  }
  info.macvlan_mode = ModeOf(link, info.kind);
  return info;
}

LinkPtr GetLink(nl_sock* sock, const std::string& name, int& rc) {
  rtnl_link* raw = nullptr;
  rc = rtnl_link_get_kernel(sock, 0, name.c_str(), &raw);
  return LinkPtr(rc < 0 ? nullptr : raw);
}

std::vector<unsigned char> AddressBytes(const IpAddress& address) {
  std::vector<unsigned char> out(static_cast<size_t>(address.bits() / 8));
  Uint128 value = address.value();
  for (auto it = out.rbegin(); it != out.rend(); ++it) {
    *it = static_cast<unsigned char>(value & 0xff);
    value >>= 8;
  }
  return out;
}

int SendAndCollect(nl_sock* sock, nl_msg* request, const OnAnswer& on_answer, int& dump_error) {
  CallbackPtr callbacks(nl_cb_alloc(NL_CB_DEFAULT));
  if (callbacks == nullptr) return -NLE_NOMEM;
  nl_cb_set(callbacks.get(), NL_CB_VALID, NL_CB_CUSTOM, PassAnswer, const_cast<OnAnswer*>(&on_answer));
  nl_cb_set(callbacks.get(), NL_CB_FINISH, NL_CB_CUSTOM, KeepDumpError, &dump_error);
  const bool dump = (nlmsg_hdr(request)->nlmsg_flags & NLM_F_DUMP) == NLM_F_DUMP;
  int rc = nl_send_auto(sock, request);  // asks for an ACK too (libnl's auto-ack)
  if (rc >= 0) rc = nl_recvmsgs(sock, callbacks.get());
  // A dump ends with NLMSG_DONE; a single answer is followed by the ACK, read here so that the
  // next request's answers are not taken for this one's.
  if (rc >= 0 && !dump) rc = nl_wait_for_ack(sock);
  return rc < 0 ? rc : 0;
}

Status DumpStatus(int dump_error, const std::string& what) {
  if (dump_error == -EINVAL) return NotFound(what + ": no such network namespace (any more)");
  if (dump_error == -EPERM || dump_error == -EACCES) {
    return PermissionDenied(fmt::format("{}: {} (needs CAP_NET_ADMIN)", what, std::strerror(-dump_error)));
  }
  if (dump_error < 0) return Internal(fmt::format("{}: {}", what, std::strerror(-dump_error)));
  return OkStatus();
}

Result<NlSocket> LinkManager::OpenSocket() {
  NlSocket sock(nl_socket_alloc());
  if (sock == nullptr) return Internal("allocate netlink socket");
  if (int rc = nl_connect(sock.get(), NETLINK_ROUTE); rc < 0) return NlStatus(rc, "connect route netlink socket");
  return sock;
}

}  // namespace smv::nl
