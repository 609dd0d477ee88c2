#include "driver/lmdb_network_store.h"

#include "driver/records.h"

namespace smv::driver {

const std::vector<std::string>& LmdbNetworkStore::DatabaseNames() {
  static const std::vector<std::string> names = {"networks", "links", "endpoints"};
  return names;
}

Result<std::unique_ptr<LmdbNetworkStore>> LmdbNetworkStore::Open(lmdb::Env& env) {
  Result<lmdb::Dbi> networks = env.Database("networks");
  Result<lmdb::Dbi> links = env.Database("links");
  Result<lmdb::Dbi> endpoints = env.Database("endpoints");
  if (!networks.ok()) return networks.status();
  if (!links.ok()) return links.status();
  if (!endpoints.ok()) return endpoints.status();
  return std::unique_ptr<LmdbNetworkStore>(new LmdbNetworkStore(env, *networks, *links, *endpoints));
}

Result<DriverSnapshot> LmdbNetworkStore::Load() {
  Result<lmdb::Txn> txn = env_.BeginRead();
  if (!txn.ok()) return txn.status();
  DriverSnapshot snapshot;
  SMV_RETURN_IF_ERROR(lmdb::DecodeAll(*txn, networks_, "networks", records::DecodeNetwork, snapshot.networks));
  SMV_RETURN_IF_ERROR(lmdb::DecodeAll(*txn, links_, "links", records::DecodeLink, snapshot.links));
  SMV_RETURN_IF_ERROR(lmdb::DecodeAll(*txn, endpoints_, "endpoints", records::DecodeEndpoint, snapshot.endpoints));
  return snapshot;
}

Status LmdbNetworkStore::Apply(const DriverBatch& batch) {
  Result<lmdb::Txn> txn = env_.BeginWrite();
  if (!txn.ok()) return txn.status();
  for (const NetworkRecord& n : batch.put_networks) {
    SMV_RETURN_IF_ERROR(txn->Put(networks_, n.id, records::EncodeNetwork(n)));
  }
  for (const std::string& id : batch.delete_networks) {
    if (Result<bool> r = txn->Delete(networks_, id); !r.ok()) return r.status();
  }
  for (const LinkRecord& l : batch.put_links) SMV_RETURN_IF_ERROR(txn->Put(links_, l.name, records::EncodeLink(l)));
  for (const std::string& name : batch.delete_links) {
    if (Result<bool> r = txn->Delete(links_, name); !r.ok()) return r.status();
  }
  for (const EndpointRecord& e : batch.put_endpoints) {
    SMV_RETURN_IF_ERROR(txn->Put(endpoints_, e.endpoint_id, records::EncodeEndpoint(e)));
  }
  for (const std::string& id : batch.delete_endpoints) {
    if (Result<bool> r = txn->Delete(endpoints_, id); !r.ok()) return r.status();
  }
  return txn->Commit().Annotate("save network state");
}

}  // namespace smv::driver
