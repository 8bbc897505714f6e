// Owning handles for LMDB transactions and cursors.
//
// Every LMDB transaction the cache opens lives in a Txn: its destructor aborts it unless commit()
// ran, so no path out of a function (an error, an early return, an exception) can leave a write
// transaction, and with it the environment's single writer lock, held. A Cursor closes its
// cursor the same way; destroy it before the Txn it belongs to (declare it after the Txn).
#pragma once

#include <lmdb.h>

#include <cerrno>

namespace kg::cache {

class Txn {
 public:
  Txn() = default;
  Txn(const Txn&) = delete;
  Txn& operator=(const Txn&) = delete;
  Txn(Txn&& other) noexcept : m_txn(other.m_txn) { other.m_txn = nullptr; }
  Txn& operator=(Txn&& other) noexcept {
    if (this != &other) {
      abort();
      m_txn = other.m_txn;
      other.m_txn = nullptr;
    }
    return *this;
  }
  ~Txn() { abort(); }

  // Starts a transaction on `env` (flags: 0 or MDB_RDONLY), aborting any this handle held.
  // Returns 0 or mdb_txn_begin's error; on error the handle is empty.
  int begin(MDB_env* env, unsigned flags) {
    abort();
    return mdb_txn_begin(env, nullptr, flags, &m_txn);
  }

  // Commits and empties the handle, whatever the outcome (LMDB frees the transaction either way).
  // Returns 0 or mdb_txn_commit's error (nothing was committed then).
  int commit() {
    MDB_txn* txn = m_txn;
    m_txn = nullptr;
    return txn == nullptr ? EINVAL : mdb_txn_commit(txn);
  }

  // Aborts the transaction, if any. Safe to call more than once.
  void abort() {
    if (m_txn != nullptr) {
      mdb_txn_abort(m_txn);
      m_txn = nullptr;
    }
  }

  MDB_txn* get() const { return m_txn; }
  explicit operator bool() const { return m_txn != nullptr; }

 private:
  MDB_txn* m_txn = nullptr;
};

class Cursor {
 public:
  Cursor() = default;
  Cursor(const Cursor&) = delete;
  Cursor& operator=(const Cursor&) = delete;
  ~Cursor() { close(); }

  // Opens a cursor on `dbi` in `txn`. Returns 0 or mdb_cursor_open's error.
  int open(MDB_txn* txn, MDB_dbi dbi) {
    close();
    return mdb_cursor_open(txn, dbi, &m_cursor);
  }
  void close() {
    if (m_cursor != nullptr) {
      mdb_cursor_close(m_cursor);
      m_cursor = nullptr;
    }
  }
  MDB_cursor* get() const { return m_cursor; }

 private:
  MDB_cursor* m_cursor = nullptr;
};

}  // namespace kg::cache
