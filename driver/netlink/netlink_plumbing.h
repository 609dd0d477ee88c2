#pragma once
// Private to LinkManager's .cc files: libnl objects behind unique_ptr, libnl errors as Status, a
// link as LinkInfo, and Ask (one request, every answer parsed) for what libnl's link and address
// objects cannot say (a target netnsid).

#include <linux/netlink.h>
#include <netlink/errno.h>
#include <netlink/msg.h>
#include <netlink/netlink.h>
#include <netlink/route/addr.h>
#include <netlink/route/link.h>
#include <netlink/route/route.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/ip.h"
#include "common/status.h"
#include "driver/netlink/link_ops.h"

namespace smv::nl {

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
using MsgPtr = std::unique_ptr<nl_msg, CFree<nlmsg_free>>;

// A dump interrupted by a concurrent change is flagged; it is asked again this often (CNI netlinksafe).
inline constexpr int kDumpAttempts = 5;

// libnl returns negative NLE_* codes (not errno): keep the class, add what we were doing.
Status NlStatus(int rc, std::string_view what);
// rtnl_link_get_kernel's "no such link".
inline bool IsNoSuchLink(int rc) { return rc == -NLE_OBJ_NOTFOUND || rc == -NLE_NODEV; }

LinkInfo ToInfo(rtnl_link* link);
// The link named `name` (rc: libnl's answer, 0 or a negative NLE_* code).
LinkPtr GetLink(nl_sock* sock, const std::string& name, int& rc);
// `address` in network byte order, as the kernel sends it.
std::vector<unsigned char> AddressBytes(const IpAddress& address);
inline int AddressFamily(const IpAddress& address) { return address.is_v4() ? AF_INET : AF_INET6; }

// A request of `type` with its fixed header and, when `nsid` is set, the target netnsid `attr`.
template <typename Header>
MsgPtr Request(int type, int flags, Header header, int attr = 0, std::optional<int32_t> nsid = std::nullopt) {
  MsgPtr msg(nlmsg_alloc_simple(type, flags));
  if (msg == nullptr || nlmsg_append(msg.get(), &header, sizeof header, NLMSG_ALIGNTO) < 0) return nullptr;
  if (nsid && nla_put_s32(msg.get(), attr, *nsid) < 0) return nullptr;
  return msg;
}

using OnAnswer = std::function<void(nlmsghdr*)>;
template <typename T>
using Parse = std::function<std::optional<T>(nlmsghdr*)>;

// Sends `request` and passes each answer to `on_answer`: 0 or a negative NLE_* code;
// `dump_error` is the error a dump ended with (in its NLMSG_DONE, which libnl does not read).
int SendAndCollect(nl_sock* sock, nl_msg* request, const OnAnswer& on_answer, int& dump_error);
// The error a dump ended with as a Status: a netnsid that is no namespace (any more) is kNotFound.
Status DumpStatus(int dump_error, const std::string& what);

// Sends what `build` makes and keeps what `parse` makes of each answer. A dump a concurrent change
// interrupted is asked again (as List).
template <typename T>
Result<std::vector<T>> Ask(nl_sock* sock, const std::function<MsgPtr()>& build, const Parse<T>& parse,
                           const std::string& what) {
  int rc = 0;
  for (int attempt = 0; attempt < kDumpAttempts; ++attempt) {
    std::vector<T> answers;
    const OnAnswer collect = [&](nlmsghdr* hdr) {
      if (std::optional<T> answer = parse(hdr)) answers.push_back(std::move(*answer));
    };
    MsgPtr request = build();
    if (request == nullptr) return Internal(what + ": out of memory");
    int dump_error = 0;
    rc = SendAndCollect(sock, request.get(), collect, dump_error);
    if (rc == -NLE_DUMP_INTR) continue;
    if (rc < 0) return NlStatus(rc, what);
    SMV_RETURN_IF_ERROR(DumpStatus(dump_error, what));
    return answers;
  }
  return NlStatus(rc, what);
}

}  // namespace smv::nl
