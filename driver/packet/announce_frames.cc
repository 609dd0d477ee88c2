#include "driver/packet/announce_frames.h"

#include <span>

namespace smv::driver {
namespace {

constexpr uint16_t kEtherTypeArp = 0x0806;
constexpr uint16_t kEtherTypeIpv6 = 0x86dd;
constexpr uint16_t kArpHardwareEthernet = 1;
constexpr uint16_t kArpProtocolIpv4 = 0x0800;
constexpr uint16_t kArpRequest = 1;
constexpr uint8_t kNextHeaderIcmpv6 = 58;
constexpr uint8_t kNdHopLimit = 255;  // receivers drop neighbour discovery that crossed a router
constexpr uint8_t kIcmpv6NeighbourAdvert = 136;
constexpr uint8_t kNaFlagOverride = 0x20;
constexpr uint8_t kOptionTargetLinkAddress = 2;
constexpr size_t kIcmpChecksumOffset = 2;

void Put16(std::vector<uint8_t>& out, uint16_t v) {
  out.push_back(static_cast<uint8_t>(v >> 8));
  out.push_back(static_cast<uint8_t>(v));
}
// Byte by byte: GCC 12's -Wstringop-overflow misreads a range insert into a growing vector at -O3.
void PutBytes(std::vector<uint8_t>& out, std::span<const uint8_t> bytes) {
  for (uint8_t b : bytes) out.push_back(b);
}
void PutMac(std::vector<uint8_t>& out, const MacAddress& mac) { PutBytes(out, mac.bytes()); }
void PutIp(std::vector<uint8_t>& out, const IpAddress& ip) {
  for (int shift = ip.bits() - 8; shift >= 0; shift -= 8) out.push_back(static_cast<uint8_t>(ip.value() >> shift));
}
void PutEthernet(std::vector<uint8_t>& out, const MacAddress& dst, const MacAddress& src, uint16_t type) {
  PutMac(out, dst);
  PutMac(out, src);
  Put16(out, type);
}

const IpAddress& AllNodes() {
  static const IpAddress all_nodes = *IpAddress::Parse("ff02::1");
  return all_nodes;
}

}  // namespace

std::vector<uint8_t> GratuitousArpFrame(const MacAddress& mac, const IpAddress& address) {
  std::vector<uint8_t> f;
  PutEthernet(f, MacAddress({0xff, 0xff, 0xff, 0xff, 0xff, 0xff}), mac, kEtherTypeArp);
  Put16(f, kArpHardwareEthernet);
  Put16(f, kArpProtocolIpv4);
  f.push_back(6);  // hardware address length
  f.push_back(4);  // protocol address length
  Put16(f, kArpRequest);
  PutMac(f, mac);
  PutIp(f, address);
  PutMac(f, MacAddress({0, 0, 0, 0, 0, 0}));
  PutIp(f, address);
  return f;
}

uint16_t Icmpv6Checksum(const IpAddress& src, const IpAddress& dst, const std::vector<uint8_t>& icmp) {
  std::vector<uint8_t> sum_over;
  PutIp(sum_over, src);
  PutIp(sum_over, dst);
  Put16(sum_over, 0);
  Put16(sum_over, static_cast<uint16_t>(icmp.size()));
  Put16(sum_over, 0);
  Put16(sum_over, kNextHeaderIcmpv6);
  sum_over.insert(sum_over.end(), icmp.begin(), icmp.end());
  if (sum_over.size() % 2 != 0) sum_over.push_back(0);
  uint32_t sum = 0;
  for (size_t i = 0; i < sum_over.size(); i += 2) sum += static_cast<uint32_t>(sum_over[i] << 8 | sum_over[i + 1]);
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(~sum);
}

std::vector<uint8_t> UnsolicitedNaFrame(const MacAddress& mac, const IpAddress& address) {
  std::vector<uint8_t> icmp;
  icmp.push_back(kIcmpv6NeighbourAdvert);
  icmp.push_back(0);  // code
  Put16(icmp, 0);     // checksum, below
  icmp.push_back(kNaFlagOverride);
  icmp.insert(icmp.end(), 3, 0);
  PutIp(icmp, address);
  icmp.push_back(kOptionTargetLinkAddress);
  icmp.push_back(1);  // option length in units of 8 bytes
  PutMac(icmp, mac);
  const uint16_t checksum = Icmpv6Checksum(address, AllNodes(), icmp);
  icmp[kIcmpChecksumOffset] = static_cast<uint8_t>(checksum >> 8);
  icmp[kIcmpChecksumOffset + 1] = static_cast<uint8_t>(checksum);

  std::vector<uint8_t> f;
  PutEthernet(f, MacAddress({0x33, 0x33, 0, 0, 0, 1}), mac, kEtherTypeIpv6);
  f.push_back(0x60);  // version 6, no traffic class or flow label
  f.insert(f.end(), 3, 0);
  Put16(f, static_cast<uint16_t>(icmp.size()));
  f.push_back(kNextHeaderIcmpv6);
  f.push_back(kNdHopLimit);
  PutIp(f, address);
  PutIp(f, AllNodes());
  PutBytes(f, icmp);
  return f;
}

}  // namespace smv::driver
