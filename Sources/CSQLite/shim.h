#pragma once
#include <sqlite3.h>

// SQLITE_TRANSIENT is a macro that casts -1 to a function pointer, which Swift cannot
// import. These wrappers bind a copy of the caller's bytes, so Swift buffers only need
// to live for the duration of the call.
static inline int gh_sqlite3_bind_text_copy(sqlite3_stmt *stmt, int index, const char *text, int length) {
    return sqlite3_bind_text(stmt, index, text, length, SQLITE_TRANSIENT);
}

static inline int gh_sqlite3_bind_blob_copy(sqlite3_stmt *stmt, int index, const void *bytes, int length) {
    return sqlite3_bind_blob(stmt, index, bytes, length, SQLITE_TRANSIENT);
}

// Extended result codes are macros built from expressions, which Swift does not import.
static const int GH_SQLITE_CONSTRAINT_UNIQUE = SQLITE_CONSTRAINT_UNIQUE;
static const int GH_SQLITE_CONSTRAINT_PRIMARYKEY = SQLITE_CONSTRAINT_PRIMARYKEY;
static const int GH_SQLITE_CONSTRAINT_ROWID = SQLITE_CONSTRAINT_ROWID;

#include <stdint.h>
#include <unistd.h>

// Waits for a write lock another process holds (the API and the worker on one file) in
// short steps: 50, 100, ... 1000 µs, then 1 ms each, until `timeout_ms` in total.
// SQLite's own busy timeout sleeps 1, 2, 5, 10 ... 100 ms, which leaves the cores idle
// while a lock held for a millisecond is long free. `count` is how often it ran already.
static int gh_sqlite3_short_busy_wait(void *context, int count) {
    long limit_us = (long)(intptr_t)context * 1000L;
    long waited_us = count <= 20 ? 25L * count * (count + 1) : 10500L + (long)(count - 20) * 1000L;
    if (waited_us >= limit_us) return 0;
    usleep((useconds_t)(count < 20 ? 50L * (count + 1) : 1000L));
    return 1;
}

static inline int gh_sqlite3_set_short_busy_wait(sqlite3 *db, int timeout_ms) {
    return sqlite3_busy_handler(db, gh_sqlite3_short_busy_wait, (void *)(intptr_t)timeout_ms);
}
