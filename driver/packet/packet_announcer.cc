#include "driver/packet/packet_announcer.h"

#include <arpa/inet.h>
#include <fmt/format.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>

#include "common/scope_exit.h"
#include "driver/packet/announce_frames.h"

namespace smv::driver {

Status PacketAnnouncer::Send(const Announcement& a) {
  const unsigned index = if_nametoindex(a.link.c_str());
  if (index == 0) return NotFound(fmt::format("link \"{}\": {}", a.link, std::strerror(errno)));
  const std::vector<uint8_t> frame =
      a.address.is_v4() ? GratuitousArpFrame(a.mac, a.address) : UnsolicitedNaFrame(a.mac, a.address);
  const int fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);  // protocol 0: send only
  if (fd < 0) return Internal(fmt::format("packet socket: {} (needs CAP_NET_RAW)", std::strerror(errno)));
  ScopeExit close_fd([fd] { close(fd); });
  sockaddr_ll to{};
  to.sll_family = AF_PACKET;
  to.sll_ifindex = static_cast<int>(index);
  to.sll_protocol = htons(a.address.is_v4() ? ETH_P_ARP : ETH_P_IPV6);
  to.sll_halen = ETH_ALEN;
  std::memcpy(to.sll_addr, frame.data(), ETH_ALEN);  // the frame's destination
  if (sendto(fd, frame.data(), frame.size(), 0, reinterpret_cast<const sockaddr*>(&to), sizeof(to)) < 0) {
    return Internal(fmt::format("send on \"{}\": {}", a.link, std::strerror(errno)));
  }
  return OkStatus();
}

std::optional<MacAddress> LinkMac(const std::string& link) {
  ifreq request{};
  if (link.empty() || link.size() >= sizeof(request.ifr_name)) return std::nullopt;
  std::memcpy(request.ifr_name, link.data(), link.size());
  const int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return std::nullopt;
  ScopeExit close_fd([fd] { close(fd); });
  if (ioctl(fd, SIOCGIFHWADDR, &request) < 0) return std::nullopt;
  std::array<uint8_t, 6> bytes{};
  std::memcpy(bytes.data(), request.ifr_hwaddr.sa_data, bytes.size());
  return MacAddress(bytes);
}

}  // namespace smv::driver
