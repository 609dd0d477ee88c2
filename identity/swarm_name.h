#pragma once
// Swarm names a task's container <service>.<slot>.<task id> (a global service's
// <service>.<node id>.<task id>) and gives every reschedule, update and re-create a new task id.
// A sticky address keys on what stays: <service>.<slot> (or <service>.<node id>), so
// `reservations reserve web.1 ...` pre-assigns slot 1 of service web.

#include <map>
#include <string>

namespace smv::identity {

inline constexpr char kSwarmServiceLabel[] = "com.docker.swarm.service.name";
inline constexpr char kSwarmTaskIdLabel[] = "com.docker.swarm.task.id";

// The name a container's addresses are reserved under: for a swarm task (its labels name a
// service and a task id, and `name` is <service>.<x>.<task id>) `name` without ".<task id>";
// otherwise `name` itself.
std::string ReservationName(const std::string& name, const std::map<std::string, std::string>& labels);

// Whether `name` has the shape of a swarm task's container name (<a>.<b>.<c>): only such names
// are worth an engine lookup of the labels.
bool MayBeSwarmTaskName(const std::string& name);

// The task id a name of that shape would end in: its last dot-separated part ("" when none).
std::string SwarmTaskIdOf(const std::string& name);

}  // namespace smv::identity
