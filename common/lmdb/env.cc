#include "common/lmdb/env.h"

#include <fcntl.h>
#include <lmdb.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <utility>

namespace smv::lmdb {
namespace {

MDB_val Val(std::string_view s) { return MDB_val{s.size(), const_cast<char*>(s.data())}; }
std::string_view View(const MDB_val& v) { return {static_cast<const char*>(v.mv_data), v.mv_size}; }

}  // namespace

Status MdbStatus(int rc, std::string_view what) {
  if (rc == MDB_MAP_FULL) {
    return ResourceExhausted(fmt::format("{}: state database is full ({})", what, mdb_strerror(rc)));
  }
  if (rc == EACCES || rc == EPERM) {
    return PermissionDenied(fmt::format("{}: {}", what, mdb_strerror(rc)));
  }
  return Internal(fmt::format("{}: {}", what, mdb_strerror(rc)));
}

Result<std::unique_ptr<Env>> Env::Open(const std::string& dir, size_t map_size_bytes,
                                       const std::vector<std::string>& dbs) {
  if (mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return Internal(fmt::format("create state directory \"{}\": {}", dir, std::strerror(errno)));
  }
  MDB_env* raw = nullptr;
  if (int rc = mdb_env_create(&raw); rc != 0) return MdbStatus(rc, "create LMDB environment");
  std::unique_ptr<Env> env(new Env(raw));
  if (int rc = mdb_env_set_maxdbs(raw, static_cast<MDB_dbi>(dbs.size() + 1)); rc != 0) {
    return MdbStatus(rc, "set LMDB max databases");
  }
  if (int rc = mdb_env_set_mapsize(raw, map_size_bytes); rc != 0) {
    return MdbStatus(rc, "set LMDB map size");
  }
  // MDB_NOTLS: transactions are tied to the calling function, not to thread-local slots,
  // which suits a thread pool. Default sync flags: every commit is durable before we answer.
  if (int rc = mdb_env_open(raw, dir.c_str(), MDB_NOTLS, 0600); rc != 0) {
    return MdbStatus(rc, fmt::format("open state database in \"{}\"", dir));
  }
  // LMDB's fd lacks O_CLOEXEC; we never exec, but keep child processes from inheriting it.
  int fd = -1;
  if (mdb_env_get_fd(raw, &fd) == 0 && fd >= 0) fcntl(fd, F_SETFD, FD_CLOEXEC);

  Result<Txn> txn = env->BeginWrite();  // rolled back by Txn on every early return
  if (!txn.ok()) return txn.status();
  for (const std::string& name : dbs) {
    MDB_dbi dbi = 0;
    if (int rc = mdb_dbi_open(txn->txn_, name.c_str(), MDB_CREATE, &dbi); rc != 0) {
      return MdbStatus(rc, fmt::format("open database \"{}\"", name));
    }
    env->dbis_.emplace(name, dbi);
  }
  SMV_RETURN_IF_ERROR(txn->Commit().Annotate("database list"));
  return env;
}

Env::~Env() {
  if (env_ != nullptr) mdb_env_close(env_);
}

Result<Dbi> Env::Database(std::string_view name) const {
  auto it = dbis_.find(name);
  if (it == dbis_.end()) return NotFound(fmt::format("no database \"{}\"", name));
  return it->second;
}

void Env::DropMappedPages() {
  // Safe at any time: the map is read-only (no MDB_WRITEMAP; writes go through write(2)), so
  // dropping it loses nothing. LMDB does not tell where it mapped the file (me_mapaddr is set
  // only for MDB_FIXEDMAP), so find the mapping of the data file's inode in /proc/self/maps.
  int fd = -1;
  struct stat st {};
  if (mdb_env_get_fd(env_, &fd) != 0 || fstat(fd, &st) != 0) return;
  std::ifstream maps("/proc/self/maps");
  std::string line;
  while (std::getline(maps, line)) {
    uintptr_t start = 0, end = 0;
    unsigned long long inode = 0;
    if (std::sscanf(line.c_str(), "%lx-%lx %*s %*s %*s %llu", &start, &end, &inode) != 3) continue;
    if (inode != st.st_ino || line.find("data.mdb") == std::string::npos) continue;
    madvise(reinterpret_cast<void*>(start), end - start, MADV_DONTNEED);
  }
}

Result<Txn> Env::BeginWrite() {
  MDB_txn* txn = nullptr;
  if (int rc = mdb_txn_begin(env_, nullptr, 0, &txn); rc != 0) {
    return MdbStatus(rc, "begin write transaction");
  }
  return Txn(txn);
}

Result<Txn> Env::BeginRead() {
  MDB_txn* txn = nullptr;
  if (int rc = mdb_txn_begin(env_, nullptr, MDB_RDONLY, &txn); rc != 0) {
    return MdbStatus(rc, "begin read transaction");
  }
  return Txn(txn);
}

Txn::Txn(Txn&& other) noexcept : txn_(std::exchange(other.txn_, nullptr)) {}

Txn::~Txn() {
  if (txn_ != nullptr) mdb_txn_abort(txn_);
}

Status Txn::Commit() {
  // LMDB frees the txn even when commit fails, so drop our handle first (lmdbxx README).
  MDB_txn* txn = std::exchange(txn_, nullptr);
  const int rc = mdb_txn_commit(txn);
  return rc == 0 ? OkStatus() : MdbStatus(rc, "commit");
}

Result<std::optional<std::string>> Txn::Get(Dbi dbi, std::string_view key) {
  MDB_val k = Val(key);
  MDB_val v{};
  const int rc = mdb_get(txn_, dbi, &k, &v);
  if (rc == MDB_NOTFOUND) return std::optional<std::string>();
  if (rc != 0) return MdbStatus(rc, "get");
  return std::optional<std::string>(std::string(View(v)));
}

Status Txn::Put(Dbi dbi, std::string_view key, std::string_view value) {
  MDB_val k = Val(key);
  MDB_val v = Val(value);
  const int rc = mdb_put(txn_, dbi, &k, &v, 0);
  return rc == 0 ? OkStatus() : MdbStatus(rc, "put");
}

Result<bool> Txn::Delete(Dbi dbi, std::string_view key) {
  MDB_val k = Val(key);
  const int rc = mdb_del(txn_, dbi, &k, nullptr);
  if (rc == MDB_NOTFOUND) return false;
  if (rc != 0) return MdbStatus(rc, "delete");
  return true;
}

Status Txn::ForEach(Dbi dbi, std::string_view prefix,
                    const std::function<Status(std::string_view, std::string_view)>& fn) {
  MDB_cursor* cursor = nullptr;
  if (int rc = mdb_cursor_open(txn_, dbi, &cursor); rc != 0) return MdbStatus(rc, "open cursor");
  // Close the cursor before the txn ends (lmdbxx "cursor double-free").
  struct Closer {
    MDB_cursor* c;
    ~Closer() { mdb_cursor_close(c); }
  } closer{cursor};
  MDB_val k = Val(prefix);
  MDB_val v{};
  int rc = prefix.empty() ? mdb_cursor_get(cursor, &k, &v, MDB_FIRST) : mdb_cursor_get(cursor, &k, &v, MDB_SET_RANGE);
  while (rc == 0) {
    const std::string_view key = View(k);
    if (!key.starts_with(prefix)) break;
    SMV_RETURN_IF_ERROR(fn(key, View(v)));
    rc = mdb_cursor_get(cursor, &k, &v, MDB_NEXT);
  }
  if (rc != 0 && rc != MDB_NOTFOUND) return MdbStatus(rc, "iterate");
  return OkStatus();
}

}  // namespace smv::lmdb
