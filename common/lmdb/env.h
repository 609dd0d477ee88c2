#pragma once
// RAII for LMDB (modelled on lmdbxx): an Env owns the environment and its named databases,
// a Txn is one transaction that aborts unless committed. One write transaction per operation;
// every Txn begins and ends on one thread inside one call. No <lmdb.h> in this header.

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

struct MDB_env;
struct MDB_txn;

namespace smv::lmdb {

using Dbi = unsigned int;

class Txn;

class Env {
 public:
  // Opens (creating if needed) the environment in `dir` with the named databases `dbs`,
  // all opened once here in one committed transaction (mdb_dbi_open must not race).
  static Result<std::unique_ptr<Env>> Open(const std::string& dir, size_t map_size_bytes,
                                           const std::vector<std::string>& dbs);
  ~Env();
  Env(const Env&) = delete;
  Env& operator=(const Env&) = delete;

  // kNotFound when `name` was not passed to Open.
  Result<Dbi> Database(std::string_view name) const;
  Result<Txn> BeginWrite();
  Result<Txn> BeginRead();
  // Unmaps the pages of the database file this process has read (they stay in the kernel's
  // page cache and fault back in when read again). Called after start-up has loaded
  // everything, so that a large state does not stay in the daemon's resident memory.
  void DropMappedPages();

 private:
  explicit Env(MDB_env* env) : env_(env) {}
  MDB_env* env_ = nullptr;
  std::map<std::string, Dbi, std::less<>> dbis_;
};

class Txn {
 public:
  Txn(Txn&& other) noexcept;
  Txn& operator=(Txn&&) = delete;
  ~Txn();  // not committed => rolled back

  Status Commit();
  Result<std::optional<std::string>> Get(Dbi dbi, std::string_view key);
  Status Put(Dbi dbi, std::string_view key, std::string_view value);
  Result<bool> Delete(Dbi dbi, std::string_view key);  // false: was absent
  // Calls `fn` for every entry whose key starts with `prefix`, in key order.
  Status ForEach(Dbi dbi, std::string_view prefix,
                 const std::function<Status(std::string_view key, std::string_view value)>& fn);

 private:
  friend class Env;
  explicit Txn(MDB_txn* txn) : txn_(txn) {}
  MDB_txn* txn_ = nullptr;
};

// Decodes every entry of `dbi` with `decode(db, key, value) -> Result<Record>` and hands each
// record to `use`; stops at the first record that does not decode. `db` names the database in
// messages.
template <typename Decode, typename Use>
Status DecodeEach(Txn& txn, Dbi dbi, std::string_view db, Decode decode, Use use) {
  return txn.ForEach(dbi, "", [&](std::string_view key, std::string_view value) {
    auto record = decode(db, key, value);
    if (!record.ok()) return record.status();
    use(std::move(record).value());
    return OkStatus();
  });
}

// DecodeEach into a vector.
template <typename Record, typename Decode>
Status DecodeAll(Txn& txn, Dbi dbi, std::string_view db, Decode decode, std::vector<Record>& out) {
  return DecodeEach(txn, dbi, db, decode, [&out](Record&& r) { out.push_back(std::move(r)); });
}

// LMDB return code -> Status, with what we were doing.
Status MdbStatus(int rc, std::string_view what);

}  // namespace smv::lmdb
