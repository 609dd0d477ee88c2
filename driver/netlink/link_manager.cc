// LinkManager: open, look up, list, change flags, delete (link_manager.h lists the other files).

#include "driver/netlink/link_manager.h"

#include <net/if.h>

#include "netlink_plumbing.h"

namespace smv::nl {

Result<std::unique_ptr<LinkManager>> LinkManager::Open() {
  Result<NlSocket> sock = OpenSocket();
  if (!sock.ok()) return sock.status();
  return std::unique_ptr<LinkManager>(new LinkManager(std::move(*sock)));
}

LinkManager::LinkManager(NlSocket sock) : sock_(std::move(sock)) {}

LinkManager::~LinkManager() = default;

Result<std::optional<LinkInfo>> LinkManager::Find(const std::string& name) {
  std::scoped_lock lock(mu_);
  int rc = 0;
  LinkPtr link = GetLink(sock_.get(), name, rc);
  if (IsNoSuchLink(rc)) return std::optional<LinkInfo>();
  if (rc < 0) return NlStatus(rc, fmt::format("look up interface \"{}\"", name));
  LinkInfo info = ToInfo(link.get());
  if (info.parent_index != 0) {
    rtnl_link* raw = nullptr;
    if (rtnl_link_get_kernel(sock_.get(), info.parent_index, nullptr, &raw) == 0) {
      LinkPtr parent(raw);
      info.parent_name = rtnl_link_get_name(parent.get()) ? rtnl_link_get_name(parent.get()) : "";
    }
  }
  return std::optional<LinkInfo>(info);
}

Result<std::vector<LinkInfo>> LinkManager::List() {
  std::scoped_lock lock(mu_);
  nl_cache* raw = nullptr;
  int rc = 0;
  for (int attempt = 0; attempt < kDumpAttempts; ++attempt) {
    rc = rtnl_link_alloc_cache(sock_.get(), AF_UNSPEC, &raw);
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
  int rc = 0;
  LinkPtr link = GetLink(sock_.get(), name, rc);
  if (IsNoSuchLink(rc)) return NotFound(fmt::format("interface \"{}\" not found", name));
  if (rc < 0) return NlStatus(rc, fmt::format("look up interface \"{}\"", name));
  return rtnl_link_get_ifindex(link.get());
}

Status LinkManager::Delete(const std::string& name) {
  std::scoped_lock lock(mu_);
  LinkPtr link(rtnl_link_alloc());
  if (link == nullptr) return Internal("allocate link object");
  if (owner_tag_.empty()) {
    rtnl_link_set_name(link.get(), name.c_str());
  } else {
    // Read the tag first, then delete that very link (by index, not by a name that could change hands).
    int rc = 0;
    LinkPtr found = GetLink(sock_.get(), name, rc);
    if (rc < 0) return NlStatus(rc, fmt::format("delete interface \"{}\"", name));
    const char* alias = rtnl_link_get_ifalias(found.get());
    if (alias != nullptr && TaggedByAnother(alias, owner_tag_)) {
      return FailedPrecondition(fmt::format(
          "interface \"{}\" left alone: it belongs to another static-macvlan instance (its alias is \"{}\", "
          "this instance's \"{}\")",
          name, alias, owner_tag_));
    }
    rtnl_link_set_ifindex(link.get(), rtnl_link_get_ifindex(found.get()));
  }
  const int rc = rtnl_link_delete(sock_.get(), link.get());
  if (rc < 0) return NlStatus(rc, fmt::format("delete interface \"{}\"", name));
  return OkStatus();
}

void LinkManager::DeleteByNameLocked(const std::string& name) {
  LinkPtr doomed(rtnl_link_alloc());
  if (doomed == nullptr) return;
  rtnl_link_set_name(doomed.get(), name.c_str());
  rtnl_link_delete(sock_.get(), doomed.get());
}

Status LinkManager::ChangeFlagsLocked(const std::string& name, unsigned set, unsigned clear) {
  int rc = 0;
  LinkPtr orig = GetLink(sock_.get(), name, rc);
  if (rc < 0) return NlStatus(rc, fmt::format("look up interface \"{}\"", name));
  LinkPtr change(rtnl_link_alloc());
  if (change == nullptr) return Internal("allocate link object");
  if (set != 0) rtnl_link_set_flags(change.get(), set);
  if (clear != 0) rtnl_link_unset_flags(change.get(), clear);
  if (rc = rtnl_link_change(sock_.get(), orig.get(), change.get(), 0); rc < 0) {
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

}  // namespace smv::nl
