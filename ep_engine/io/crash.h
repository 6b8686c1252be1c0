/*
 * crash.h - the I/O layer's power-loss model (io.c's private half; tests arm
 * it through io_control, see io.h).
 *
 * While armed it keeps a journal of what the disk would not yet hold after a
 * power cut: every write and truncation since its file's last fsync (with the
 * bytes it replaced), every create, rename and unlink since the directory's
 * last fsync. At the chosen call the power is cut: the journal is undone in
 * reverse, so the files are left as the disk may hold them (unsynced writes
 * dropped, or in the torn mode kept up to a sector with a torn sector after
 * it; names not made durable rolled back), and every call after that fails
 * with EIO, as on a machine that is off.
 *
 * Every function is called with the I/O layer's crash lock held, which
 * serialises all file calls while the model is armed.
 */
#ifndef EP_IO_CRASH_H
#define EP_IO_CRASH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

typedef struct io_crash io_crash;

typedef enum crash_mode { CRASH_DROP = 1, CRASH_TORN = 2 } crash_mode;

io_crash *crash_create(crash_mode mode, uint64_t cut_after, unsigned seed);
void crash_free(io_crash *c);

/** Before a file call: -EIO once the power is off; cuts it when this is the
 * chosen call (then also -EIO). */
int crash_before_call(io_crash *c);
bool crash_is_cut(const io_crash *c);

/** Where the journal ends now; crash_forget_since drops what was recorded
 * after it (a call that failed did not change anything). */
size_t crash_mark(const io_crash *c);
void crash_forget_since(io_crash *c, size_t mark);

/** Deliberate breakage for the power-loss test's own test: fsync that keeps
 * nothing, and a directory fsync after a rename that keeps nothing. */
void crash_break(io_crash *c, bool fsync, bool dirsync_after_rename);

/* Journal entries, each recorded just before the call it undoes. */
void crash_on_open(io_crash *c, const char *path, int flags);
void crash_on_write(io_crash *c, int fd, int64_t off, size_t len);
void crash_on_truncate(io_crash *c, int fd, uint64_t len);
void crash_on_fsync(io_crash *c, int fd);
void crash_on_rename(io_crash *c, const char *from, const char *to);
void crash_on_unlink(io_crash *c, const char *path);
void crash_on_dirsync(io_crash *c, const char *dir);

/** Counts for tests: events undone at the cut, torn sectors written. */
void crash_stats(const io_crash *c, uint64_t *undone, uint64_t *torn);

#endif
