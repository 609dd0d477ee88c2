#include "identity/swarm_name.h"

#include <algorithm>

namespace smv::identity {
namespace {

std::string Label(const std::map<std::string, std::string>& labels, const char* key) {
  auto it = labels.find(key);
  return it == labels.end() ? "" : it->second;
}

}  // namespace

std::string ReservationName(const std::string& name, const std::map<std::string, std::string>& labels) {
  const std::string service = Label(labels, kSwarmServiceLabel);
  const std::string task_id = Label(labels, kSwarmTaskIdLabel);
  // Swarm's task ids are base 36: one with a dot is no task id of swarm's, and would be read
  // differently by SwarmTaskIdOf (the last dotted part) than here.
  if (service.empty() || task_id.empty() || task_id.find('.') != std::string::npos) return name;
  const std::string suffix = "." + task_id;
  if (!name.ends_with(suffix)) return name;
  std::string slot_name = name.substr(0, name.size() - suffix.size());
  // <service>.<slot or node id>: anything else is not a name swarm gave.
  if (!slot_name.starts_with(service + ".") || slot_name.size() == service.size() + 1) return name;
  return slot_name;
}

bool MayBeSwarmTaskName(const std::string& name) {
  const size_t last = name.rfind('.');
  if (last == std::string::npos || last + 1 == name.size() || last == 0) return false;
  return std::count(name.begin(), name.end(), '.') >= 2;
}

std::string SwarmTaskIdOf(const std::string& name) {
  const size_t last = name.rfind('.');
  return last == std::string::npos ? "" : name.substr(last + 1);
}

}  // namespace smv::identity
