#pragma once
// Which of a container's announcements its engine sends itself, so that the plugin does not
// double them. Docker >= 28.0.0 (moby's libnetwork osl advertiseAddrs, first in v28.0.0) sends,
// from inside the container once its interface is up, advertise_addr_nmsgs unsolicited neighbour
// advertisements for the interface's IPv6 address with the MAC dockerd knows for it. For our
// driver its IPv4 frames are address-less ARP probes ("who-has 0.0.0.0") that no neighbour learns
// from (seen on 28.5.2), so gratuitous ARP stays the plugin's. An ipvlan's MAC is its parent's,
// which the plugin does not hand to dockerd: the engine has no MAC and sends nothing for it (from
// 29.3 moby reads a missing MAC from the link and announces an ipvlan's too; the plugin still
// does, untested here: an extra NA is harmless).
// Engines before 28 send nothing. When the engine cannot be asked its version, the plugin
// announces: an extra NA is harmless, a missing one leaves neighbours on a stale MAC.

#include <charconv>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "common/clock.h"
#include "common/ip.h"
#include "common/status.h"
#include "driver/announce/announcer.h"

namespace smv::driver {

// The first engine whose own unsolicited NAs make the plugin's redundant.
inline constexpr int kFirstEngineSendingNas = 28;

// The major of an engine version ("28.5.2" -> 28, "20.10.24+dfsg1" -> 20); nullopt when it does
// not start with a number.
inline std::optional<int> EngineMajorVersion(std::string_view version) {
  int major = 0;
  const auto [end, error] = std::from_chars(version.data(), version.data() + version.size(), major);
  if (error != std::errc() || end == version.data()) return std::nullopt;
  return major;
}

// True when an engine of `engine_version` sends `a` itself: an IPv6 address, an engine >= 28,
// and a MAC dockerd knows (not the parent link's own, `link_mac`, which is an ipvlan's).
inline bool EngineSendsItself(const Announcement& a, std::string_view engine_version,
                              const std::optional<MacAddress>& link_mac) {
  if (a.address.is_v4()) return false;
  const std::optional<int> major = EngineMajorVersion(engine_version);
  if (!major || *major < kFirstEngineSendingNas) return false;
  return !link_mac || *link_mac != a.mac;
}

// EngineSendsItself with the engine asked once: a version once read is kept; an engine that
// does not answer is asked again at most every `retry_after`, and meanwhile the plugin announces.
// Thread-safe; asks outside any caller's lock (the schedule's thread calls it).
class EngineAnnounces {
 public:
  using AskVersion = std::function<Result<std::string>()>;
  using LinkMac = std::function<std::optional<MacAddress>(const std::string& link)>;
  EngineAnnounces(AskVersion ask_version, LinkMac link_mac, Millis retry_after = std::chrono::seconds(30))
      : ask_version_(std::move(ask_version)), link_mac_(std::move(link_mac)), retry_after_(retry_after) {}

  bool SendsItself(const Announcement& a) {
    if (a.address.is_v4()) return false;  // never asked for IPv4: the plugin's either way
    const std::optional<std::string> version = Version();
    return version && EngineSendsItself(a, *version, link_mac_(a.link));
  }
  // The version read, or nullopt (not asked yet, or the engine did not answer).
  std::optional<std::string> Version() {
    std::scoped_lock lock(mu_);
    if (version_ || (asked_ && SteadyClock::now() < asked_at_ + retry_after_)) return version_;
    asked_ = true;
    asked_at_ = SteadyClock::now();
    Result<std::string> answer = ask_version_();
    if (answer.ok()) version_ = std::move(answer).value();
    return version_;
  }

 private:
  AskVersion ask_version_;
  LinkMac link_mac_;
  Millis retry_after_;
  std::mutex mu_;  // held while asking: one question at a time
  std::optional<std::string> version_;
  bool asked_ = false;
  SteadyClock::time_point asked_at_;
};

}  // namespace smv::driver
