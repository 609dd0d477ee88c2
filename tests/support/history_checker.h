#pragma once
// A Jepsen-style history of what the clients of a fleet asked and were answered, and the checks
// the fleet's promise makes on it:
//   (a) no address is held by two names at overlapping times;
//   (b) a name's reservation changes only when it is released: every address a name is answered
//       is the one it was answered before, and an address once answered to a name goes to
//       another name only after that name's reservation was released (`reservations release`);
//   and, against the book read at the end, nothing acknowledged is lost and nothing is left held
//   that every client was told is free.
//
// Each operation has its start and end (when the call went out, when its answer came). An
// operation may take effect at any moment between the two, so a holding that is certain runs
// from the allocation's end to the start of its release; a holding that is only possible (the
// allocation's answer never came, or said its outcome is unknown) runs from the allocation's
// start on. Its address is the one asked for, else the one the name is reserved (answered
// before or after). Two holdings of one address by two names conflict when they overlap.
// Anonymous allocations (no name: engines before Docker 29) each count as a name of their own.

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace smv::testing {

enum class OpKind { kAllocate, kRelease, kReleaseReservation };
enum class Outcome {
  kOk,       // answered without an error
  kRefused,  // answered with an error: nothing changed
  kUnknown,  // no answer, or one saying the outcome is unknown: it may have happened
};

struct Operation {
  OpKind kind = OpKind::kAllocate;
  Outcome outcome = Outcome::kOk;
  int64_t start_us = 0, end_us = 0;  // microseconds since the history began
  std::string node;                  // the host asked
  std::string name;                  // the container's name; empty: anonymous
  std::string address;               // bare: answered, asked for (--ip) or released; empty: none known
  std::string detail;                // the error, for reports
};

// Records operations from many threads.
class History {
 public:
  History() : origin_(std::chrono::steady_clock::now()) {}
  int64_t Now() const {
    return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - origin_).count();
  }
  void Add(Operation op) {
    std::scoped_lock lock(mu_);
    ops_.push_back(std::move(op));
  }
  std::vector<Operation> operations() const {
    std::scoped_lock lock(mu_);
    return ops_;
  }

 private:
  const std::chrono::steady_clock::time_point origin_;
  mutable std::mutex mu_;
  std::vector<Operation> ops_;
};

inline std::string DescribeOp(const Operation& op) {
  static const char* const kKinds[] = {"allocate", "release", "release-reservation"};
  static const char* const kOutcomes[] = {"ok", "refused", "unknown"};
  char times[64];
  std::snprintf(times, sizeof times, "%.3f-%.3f s", static_cast<double>(op.start_us) / 1e6,
                static_cast<double>(op.end_us) / 1e6);
  return std::string(kKinds[static_cast<int>(op.kind)]) + " " + (op.name.empty() ? "(anonymous)" : op.name) + " " +
         (op.address.empty() ? "?" : op.address) + " on " + op.node + " " + times + " " +
         kOutcomes[static_cast<int>(op.outcome)];
}

namespace history_detail {

inline constexpr int64_t kForever = std::numeric_limits<int64_t>::max();

// One name's holding of one address, from one allocation to the release that ended it.
struct Holding {
  std::string holder;  // the name, or "#<op>" for an anonymous allocation
  std::string address;
  int64_t from = 0, to = kForever;
  bool certain = true;
  size_t op = 0;                // the allocation
  std::optional<size_t> ended;  // the release
};

inline std::vector<size_t> ByStart(const std::vector<Operation>& ops) {
  std::vector<size_t> order(ops.size());
  for (size_t i = 0; i < ops.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return ops[a].start_us < ops[b].start_us; });
  return order;
}

// Whether `name`'s reservation was released by an operation that may fall between `before`
// (it may have ended the reservation after this one began) and `after` (before this one ended).
inline bool ReservationReleasedBetween(const std::vector<Operation>& ops, const std::string& name,
                                       const Operation& before, const Operation& after) {
  for (const Operation& r : ops) {
    if (r.kind == OpKind::kReleaseReservation && r.outcome != Outcome::kRefused && r.name == name &&
        r.start_us < after.end_us && r.end_us > before.start_us) {
      return true;
    }
  }
  return false;
}

// The address a name's allocation without a known address may have taken: the one the name was
// answered nearest in time (a name keeps its address while its reservation lives).
inline std::string ReservedAddressOf(const std::vector<Operation>& ops, const Operation& op) {
  std::string best;
  int64_t distance = kForever;
  for (const Operation& o : ops) {
    if (o.kind != OpKind::kAllocate || o.outcome != Outcome::kOk || o.name != op.name || o.address.empty()) continue;
    const int64_t d = std::abs(o.end_us - op.start_us);
    if (d < distance) distance = d, best = o.address;
  }
  return best;
}

inline std::vector<Holding> Holdings(const std::vector<Operation>& ops) {
  std::vector<Holding> holdings;
  for (size_t i : ByStart(ops)) {
    const Operation& op = ops[i];
    if (op.kind == OpKind::kRelease && op.outcome != Outcome::kRefused) {
      // Ends every holding of that address by that name (any, when the release names none) that
      // began before it; it may have taken effect at its start.
      for (Holding& h : holdings) {
        const bool same = op.name.empty() ? h.holder.starts_with("#") || ops[h.op].name.empty() : h.holder == op.name;
        if (same && h.address == op.address && !h.ended) h.to = op.start_us, h.ended = i;
      }
    }
    if (op.kind != OpKind::kAllocate || op.outcome == Outcome::kRefused) continue;
    Holding h;
    h.holder = op.name.empty() ? "#" + std::to_string(i) : op.name;
    h.address = op.address;
    if (op.outcome == Outcome::kUnknown && h.address.empty() && !op.name.empty())
      h.address = ReservedAddressOf(ops, op);
    if (h.address.empty()) continue;  // an anonymous allocation that may have happened: address unknown
    h.certain = op.outcome == Outcome::kOk;
    h.from = h.certain ? op.end_us : op.start_us;
    h.op = i;
    holdings.push_back(std::move(h));
  }
  return holdings;
}

}  // namespace history_detail

// Every violation of (a) and (b), one line each, naming the operations; empty: the history holds.
inline std::vector<std::string> CheckHistory(const std::vector<Operation>& ops) {
  using namespace history_detail;
  std::vector<std::string> problems;
  // (a): per address, every pair of holdings by two names.
  std::map<std::string, std::vector<Holding>> by_address;
  for (Holding& h : Holdings(ops)) by_address[h.address].push_back(std::move(h));
  for (const auto& [address, holdings] : by_address) {
    for (size_t x = 0; x < holdings.size(); ++x) {
      for (size_t y = x + 1; y < holdings.size(); ++y) {
        const Holding &a = holdings[x], &b = holdings[y];
        if (a.holder == b.holder || std::max(a.from, b.from) >= std::min(a.to, b.to)) continue;
        problems.push_back("address " + address + " held by two names at once: " + (a.certain ? "" : "possibly ") +
                           "by [" + DescribeOp(ops[a.op]) + "] and " + (b.certain ? "" : "possibly ") + "by [" +
                           DescribeOp(ops[b.op]) + "]");
      }
    }
  }
  // (b): answered allocations in the order of their answers, per name and per address.
  std::vector<size_t> answered;
  for (size_t i = 0; i < ops.size(); ++i) {
    const Operation& op = ops[i];
    if (op.kind == OpKind::kAllocate && op.outcome == Outcome::kOk && !op.name.empty()) answered.push_back(i);
  }
  std::stable_sort(answered.begin(), answered.end(), [&](size_t a, size_t b) { return ops[a].end_us < ops[b].end_us; });
  std::map<std::string, size_t> last_of_name, last_at_address;
  for (size_t i : answered) {
    const Operation& op = ops[i];
    if (auto it = last_of_name.find(op.name); it != last_of_name.end()) {
      const Operation& before = ops[it->second];
      if (before.address != op.address && !ReservationReleasedBetween(ops, op.name, before, op)) {
        problems.push_back("name " + op.name + " moved to another address without its reservation released: [" +
                           DescribeOp(before) + "] then [" + DescribeOp(op) + "]");
      }
    }
    if (auto it = last_at_address.find(op.address); it != last_at_address.end()) {
      const Operation& before = ops[it->second];
      if (before.name != op.name && !ReservationReleasedBetween(ops, before.name, before, op)) {
        problems.push_back("address " + op.address + " reserved for " + before.name +
                           " went to another name without that reservation released: [" + DescribeOp(before) +
                           "] then [" + DescribeOp(op) + "]");
      }
    }
    last_of_name[op.name] = i;
    last_at_address[op.address] = i;
  }
  return problems;
}

// The book as read at one revision at the end: address -> the name its lease carries ("" for an
// anonymous lease), name -> reserved address.
struct BookAtEnd {
  std::map<std::string, std::string> leased;
  std::map<std::string, std::string> reserved;
};

// What the book must hold after `ops` (every call finished): a reservation for every name
// answered an address (unless it was released), a lease for every holding still certain, and
// no lease no operation could have left (a stray: the address is lost to the pool).
inline std::vector<std::string> CheckBookAtEnd(const std::vector<Operation>& ops, const BookAtEnd& book) {
  using namespace history_detail;
  std::vector<std::string> problems;
  std::map<std::string, const Operation*> last_answer;  // name -> its last answered allocation
  for (const Operation& op : ops) {
    if (op.kind != OpKind::kAllocate || op.outcome != Outcome::kOk || op.name.empty()) continue;
    const Operation*& last = last_answer[op.name];
    if (last == nullptr || last->end_us < op.end_us) last = &op;
  }
  for (const auto& [name, op] : last_answer) {
    bool released = false;
    for (const Operation& r : ops) {
      released = released || (r.kind == OpKind::kReleaseReservation && r.name == name &&
                              r.outcome != Outcome::kRefused && r.end_us > op->start_us);
    }
    auto it = book.reserved.find(name);
    if (!released && (it == book.reserved.end() || it->second != op->address)) {
      problems.push_back("lost reservation: " + name + " was answered " + op->address + " [" + DescribeOp(*op) +
                         "] but the book reserves " + (it == book.reserved.end() ? "nothing" : it->second));
    }
  }
  std::set<std::pair<std::string, std::string>> may_hold;  // (address, name) some holding may still have
  std::set<std::string> unknown_names;  // names whose allocation may have happened at an unknown address
  for (const Holding& h : Holdings(ops)) {
    const std::string name = ops[h.op].name;
    const bool open = !h.ended || ops[*h.ended].outcome == Outcome::kUnknown;
    if (open) may_hold.insert({h.address, name});
    if (open && h.certain && !h.ended) {
      auto it = book.leased.find(h.address);
      if (it == book.leased.end() || it->second != name) {
        problems.push_back("lost lease: [" + DescribeOp(ops[h.op]) + "] was never released but the book has " +
                           (it == book.leased.end() ? "no lease on it" : "a lease of " + it->second));
      }
    }
  }
  for (const Operation& op : ops) {
    if (op.kind == OpKind::kAllocate && op.outcome == Outcome::kUnknown) unknown_names.insert(op.name);
  }
  for (const auto& [address, name] : book.leased) {
    if (may_hold.contains({address, name}) || unknown_names.contains(name)) continue;
    problems.push_back("stray lease: the book leases " + address + " to " + (name.empty() ? "(anonymous)" : name) +
                       " though every answered operation left it free");
  }
  return problems;
}

}  // namespace smv::testing
