// Writes into a cache's LMDB environment behind LocalCache's back: what damage, an older
// kernelgen or another program leaves there. Unit tests only (tests/support is on their include
// path).
#pragma once

#include <gtest/gtest.h>
#include <lmdb.h>

#include <functional>
#include <string>

namespace kg::testing {

// Runs edit(txn, dbi) on database `db` (nullptr: the main one) of the environment in `dir`, in
// one write transaction that is committed; `create` creates the database when it is missing.
inline void raw_lmdb_write(const std::string& dir, const char* db, bool create,
                           const std::function<void(MDB_txn*, MDB_dbi)>& edit) {
  MDB_env* env = nullptr;
  ASSERT_EQ(mdb_env_create(&env), 0);
  mdb_env_set_maxdbs(env, 4);
  ASSERT_EQ(mdb_env_open(env, dir.c_str(), 0, 0600), 0);
  MDB_txn* txn = nullptr;
  ASSERT_EQ(mdb_txn_begin(env, nullptr, 0, &txn), 0);
  MDB_dbi dbi;
  ASSERT_EQ(mdb_dbi_open(txn, db, create ? MDB_CREATE : 0, &dbi), 0);
  edit(txn, dbi);
  ASSERT_EQ(mdb_txn_commit(txn), 0);
  mdb_env_close(env);
}

}  // namespace kg::testing
