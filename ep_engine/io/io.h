/*
 * io.h - the engine's one door to the file system, with fault injection.
 *
 * Every file call the engine makes goes through here, so a test can make the
 * Nth call of a kind fail (ENOSPC, EIO, ...), write only part of its bytes, or
 * pause until the test lets it go. Functions return 0 (or a descriptor) on
 * success and -errno on failure; they never abort. One ep_io per engine
 * instance: faults armed on one engine never touch another.
 */
#ifndef EP_IO_H
#define EP_IO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

typedef enum io_op {
    IO_OPEN,
    IO_WRITE,
    IO_FSYNC,
    IO_RENAME,
    IO_DIRSYNC,
    IO_READ,
    IO_UNLINK,
    IO_MKDIR,
    IO_READ_CACHED,
    IO_NOPS
} io_op;

typedef struct ep_io ep_io;

ep_io *io_create(void);
/** Frees the layer; resumes any paused call first. */
void io_destroy(ep_io *io);

/**
 * Controls fault injection with a command:
 *   "op=fsync;nth=1;errno=EIO;count=1"  the 1st fsync from now fails with EIO
 *                                       (count: how many calls fail; 0 = all
 *                                       from nth on)
 *   "op=write;nth=2;short=1"            the 2nd write writes half, then fails
 *                                       (errno defaults to ENOSPC)
 *   "op=read;nth=1;short=1"             the 1st read returns half of what it asked
 *   "op=rename;nth=1;pause=1"           the 1st rename waits for "resume"
 *   "resume"                            lets paused calls go on
 *   "wait_paused"                       waits (up to 10 s) until a call is paused
 *   "clear"                             removes every fault
 *   "crash=drop;cut_after=N[;seed=S]"   arms the power-loss model (crash.h):
 *                                       the Nth file call from now cuts the
 *                                       power (unsynced writes and names undone;
 *                                       "torn" keeps whole sectors and tears
 *                                       one); every call after fails with EIO.
 *                                       N = 0: never cut. Once per ep_io.
 *   "break=fsync" / "break=dirsync_after_rename"
 *                                       with the model armed: that fsync keeps
 *                                       nothing (to prove a test catches it)
 *   "crash_state"                       why gets "off", "on" or "cut"
 * ops: open write fsync rename dirsync read unlink mkdir. Returns 0, or -1 with a
 * reason in why.
 */
int io_control(ep_io *io, const char *cmd, char *why, size_t whylen);

/** How many calls of an op have been made (for tests). */
uint64_t io_calls(ep_io *io, io_op op);

int io_open(ep_io *io, const char *path, int flags, mode_t mode);
int io_close(ep_io *io, int fd);
/** Writes all of buf (retrying short writes the kernel makes). */
int io_write_all(ep_io *io, int fd, const void *buf, size_t len);
/** Writes all of buf at offset off (counted, and failed, as a write). */
int io_pwrite_all(ep_io *io, int fd, const void *buf, size_t len, uint64_t off);
/** Cuts or extends an open file to len bytes (no fault injection). */
int io_truncate(ep_io *io, int fd, uint64_t len);
/** Starts writing a range of an open file to disk without waiting (a hint,
 * where the system has sync_file_range): a long batch's fsync then finds most
 * of it written. Errors show at the fsync; no fault injection. */
void io_start_writeback(ep_io *io, int fd, uint64_t off, uint64_t len);
/** Tells the system that an open file will be read from start to end (a hint:
 * posix_fadvise SEQUENTIAL, which widens the kernel's own read-ahead; no fault
 * injection). */
void io_advise_sequential(ep_io *io, int fd);
/** fdatasync: the data and the size, without timestamps (counted as fsync). */
int io_fsync(ep_io *io, int fd);
int io_rename(ep_io *io, const char *from, const char *to);
/** fsyncs the directory itself, so a rename in it is durable. */
int io_fsync_dir(ep_io *io, const char *dir);
/** Reads a whole file (at most max bytes) into a malloc'd buffer. -ENOENT if
 * missing, -EFBIG if larger than max. */
int io_read_file(ep_io *io, const char *path, size_t max, char **buf, size_t *len);
int io_unlink(ep_io *io, const char *path);
/** Creates a directory: 0, or -errno (-EEXIST if it is there). */
int io_mkdir(ep_io *io, const char *path, mode_t mode);
/** Reads up to len bytes at offset; the count read (0 at end of file) or -errno. */
ssize_t io_pread(ep_io *io, int fd, void *buf, size_t len, uint64_t off);
/* A read that never waits for the disk: what the page cache holds of the
 * range (possibly short), or -EAGAIN when it holds none of it. Its faults are
 * armed as op=read_cached. */
ssize_t io_pread_cached(ep_io *io, int fd, void *buf, size_t len, uint64_t off);
/** The size of an open file, or -errno. */
int64_t io_file_size(ep_io *io, int fd);
/** Calls cb for each entry name of a directory (not . or ..); stops when cb
 * returns non-zero. 0, or -errno. Counted as a read. */
int io_list_dir(ep_io *io, const char *dir, int (*cb)(const char *name, void *ctx),
                void *ctx);

/** CRC-32C (Castagnoli) of a buffer, continuing from crc (start with 0); in
 * hardware where the processor can. */
uint32_t io_crc32c(uint32_t crc, const void *buf, size_t len);
/** The same, always in software (to test the two agree). */
uint32_t io_crc32c_portable(uint32_t crc, const void *buf, size_t len);

#endif
