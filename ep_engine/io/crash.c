/*
 * crash.c - the power-loss model of the I/O layer (crash.h).
 *
 * One journal, in call order. A data event (a write or a truncation) names
 * its file by inode and by the path it had then, and keeps the bytes and the
 * size it replaced; an fsync of the file drops the file's data events (they
 * are on disk now). A name event (create, rename, unlink) is dropped by an
 * fsync of its directory. A replaced or removed file is kept under a hidden
 * hard link until then, so a rollback can bring it back. At the cut the
 * journal is undone from its end: each event then finds the names as they
 * were when it happened.
 */
#include "crash.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SECTOR 512

enum ev_kind { EV_WRITE, EV_TRUNC, EV_CREATE, EV_RENAME, EV_UNLINK };

typedef struct ev {
    enum ev_kind kind;
    dev_t dev; /* data events: the file */
    ino_t ino;
    char *path;    /* the path then (rename: the new name) */
    char *from;    /* rename: the old name */
    char *backup;  /* rename: the replaced file; unlink: the removed one */
    uint64_t off;  /* data events: where the change starts */
    uint64_t size; /* data events: the file's size before */
    uint8_t *old;  /* data events: the bytes from off that were replaced */
    size_t old_len;
    size_t new_len; /* write: bytes written */
} ev;

struct io_crash {
    crash_mode mode;
    uint64_t cut_after, calls;
    bool cut;
    bool break_fsync, break_dirsync;
    bool last_rename; /* the last name event was a rename */
    unsigned seed;
    unsigned backups;
    ev *v;
    size_t n, cap;
    uint64_t undone, torn;
};

io_crash *crash_create(crash_mode mode, uint64_t cut_after, unsigned seed)
{
    io_crash *c = calloc(1, sizeof(*c));
    if (c != NULL) {
        c->mode = mode;
        c->cut_after = cut_after;
        c->seed = seed ? seed : 1;
    }
    return c;
}

static void ev_free(ev *e)
{
    free(e->path);
    free(e->from);
    if (e->backup != NULL)
        unlink(e->backup); /* no longer needed to undo anything */
    free(e->backup);
    free(e->old);
}

void crash_free(io_crash *c)
{
    if (c == NULL)
        return;
    for (size_t i = 0; i < c->n; i++)
        ev_free(&c->v[i]);
    free(c->v);
    free(c);
}

bool crash_is_cut(const io_crash *c)
{
    return c->cut;
}

void crash_break(io_crash *c, bool fsync, bool dirsync_after_rename)
{
    c->break_fsync = c->break_fsync || fsync;
    c->break_dirsync = c->break_dirsync || dirsync_after_rename;
}

void crash_stats(const io_crash *c, uint64_t *undone, uint64_t *torn)
{
    *undone = c->undone;
    *torn = c->torn;
}

static unsigned next_rand(io_crash *c)
{
    c->seed = c->seed * 1103515245u + 12345u;
    return c->seed >> 8;
}

static ev *ev_push(io_crash *c, enum ev_kind kind)
{
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 64;
        ev *v = realloc(c->v, cap * sizeof(ev));
        if (v == NULL)
            return NULL;
        c->v = v;
        c->cap = cap;
    }
    ev *e = &c->v[c->n++];
    memset(e, 0, sizeof(*e));
    e->kind = kind;
    return e;
}

static char *dup_str(const char *s)
{
    return s ? strdup(s) : NULL;
}

/* The path an open descriptor names now; NULL for a file already removed. */
static char *path_of_fd(int fd)
{
    char link[64], buf[4096];
    snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, buf, sizeof(buf) - 1);
    if (n <= 0)
        return NULL;
    buf[n] = '\0';
    if (n > 10 && strcmp(buf + n - 10, " (deleted)") == 0)
        return NULL;
    return strdup(buf);
}

/* A hard link to keep a file that a rename or an unlink takes away. */
static char *keep_aside(io_crash *c, const char *path)
{
    char backup[4200];
    const char *slash = strrchr(path, '/');
    int dirlen = slash ? (int)(slash - path) : 1;
    snprintf(backup, sizeof(backup), "%.*s/.crash-kept.%u", dirlen, slash ? path : ".",
             c->backups++);
    unlink(backup);
    return link(path, backup) == 0 ? strdup(backup) : NULL;
}

/* Reads n bytes at off (fewer at the end of the file). */
static uint8_t *read_at(int fd, uint64_t off, size_t n, size_t *got)
{
    uint8_t *b = malloc(n ? n : 1);
    ssize_t r = b ? pread(fd, b, n, (off_t)off) : -1;
    *got = r > 0 ? (size_t)r : 0;
    return b;
}

static void record_data(io_crash *c, int fd, enum ev_kind kind, uint64_t off, size_t len,
                        size_t new_len)
{
    struct stat st;
    char *path = path_of_fd(fd);
    if (path == NULL || fstat(fd, &st) != 0) {
        free(path);
        return;
    }
    uint64_t size = (uint64_t)st.st_size;
    size_t want = off < size ? (size_t)(size - off < len ? size - off : len) : 0;
    ev *e = ev_push(c, kind);
    if (e == NULL) {
        free(path);
        return;
    }
    e->dev = st.st_dev;
    e->ino = st.st_ino;
    e->path = path;
    e->off = off;
    e->size = size;
    e->new_len = new_len;
    /* Read through a descriptor of our own: the caller's may be write-only. */
    int rfd = open(path, O_RDONLY | O_CLOEXEC);
    e->old = read_at(rfd >= 0 ? rfd : fd, off, want, &e->old_len);
    if (rfd >= 0)
        close(rfd);
}

void crash_on_write(io_crash *c, int fd, int64_t off, size_t len)
{
    uint64_t at = off >= 0 ? (uint64_t)off : (uint64_t)lseek(fd, 0, SEEK_CUR);
    record_data(c, fd, EV_WRITE, at, len, len);
}

void crash_on_truncate(io_crash *c, int fd, uint64_t len)
{
    struct stat st;
    if (fstat(fd, &st) != 0 || (uint64_t)st.st_size == len)
        return;
    if ((uint64_t)st.st_size > len) /* shrinks: keep the bytes cut off */
        record_data(c, fd, EV_TRUNC, len, (size_t)((uint64_t)st.st_size - len), 0);
    else /* grows: only the size to put back */
        record_data(c, fd, EV_TRUNC, (uint64_t)st.st_size, 0, 0);
}

size_t crash_mark(const io_crash *c)
{
    return c->n;
}

void crash_forget_since(io_crash *c, size_t mark)
{
    while (c->n > mark)
        ev_free(&c->v[--c->n]);
}

void crash_on_open(io_crash *c, const char *path, int flags)
{
    struct stat st;
    bool exists = stat(path, &st) == 0;
    if ((flags & O_CREAT) && !exists) {
        ev *e = ev_push(c, EV_CREATE);
        if (e != NULL)
            e->path = dup_str(path);
        c->last_rename = false;
    } else if (exists && (flags & O_TRUNC) && st.st_size > 0) {
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd >= 0) {
            record_data(c, fd, EV_TRUNC, 0, (size_t)st.st_size, 0);
            close(fd);
        }
    }
}

void crash_on_fsync(io_crash *c, int fd)
{
    struct stat st;
    if (c->break_fsync || fstat(fd, &st) != 0)
        return;
    size_t keep = 0;
    for (size_t i = 0; i < c->n; i++) {
        ev *e = &c->v[i];
        if ((e->kind == EV_WRITE || e->kind == EV_TRUNC) && e->dev == st.st_dev &&
            e->ino == st.st_ino)
            ev_free(e);
        else
            c->v[keep++] = *e;
    }
    c->n = keep;
}

void crash_on_rename(io_crash *c, const char *from, const char *to)
{
    struct stat st;
    ev *e = ev_push(c, EV_RENAME);
    if (e == NULL)
        return;
    e->from = dup_str(from);
    e->path = dup_str(to);
    if (stat(to, &st) == 0)
        e->backup = keep_aside(c, to);
    c->last_rename = true;
}

void crash_on_unlink(io_crash *c, const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return;
    ev *e = ev_push(c, EV_UNLINK);
    if (e == NULL)
        return;
    e->path = dup_str(path);
    e->backup = keep_aside(c, path);
    c->last_rename = false;
}

static bool in_dir(const char *path, const char *dir)
{
    size_t n = strlen(dir);
    while (n > 1 && dir[n - 1] == '/')
        n--;
    return path != NULL && strncmp(path, dir, n) == 0 && path[n] == '/' &&
           strchr(path + n + 1, '/') == NULL;
}

void crash_on_dirsync(io_crash *c, const char *dir)
{
    if (c->break_dirsync && c->last_rename) {
        c->last_rename = false;
        return; /* the broken build: this fsync keeps nothing */
    }
    c->last_rename = false;
    size_t keep = 0;
    for (size_t i = 0; i < c->n; i++) {
        ev *e = &c->v[i];
        bool name = e->kind == EV_CREATE || e->kind == EV_RENAME || e->kind == EV_UNLINK;
        if (name && in_dir(e->path, dir))
            ev_free(e);
        else
            c->v[keep++] = *e;
    }
    c->n = keep;
}

/* ---- the cut ---- */

/* Puts a data event's old bytes and size back: all of them (drop), or in the
 * torn mode only past a random sector of the new bytes, with that sector
 * garbage. */
static int open_by_inode(const ev *e)
{
    int fd = open(e->path, O_WRONLY | O_CLOEXEC);
    struct stat st;
    if (fd >= 0 && fstat(fd, &st) == 0 && st.st_dev == e->dev && st.st_ino == e->ino)
        return fd;
    if (fd >= 0)
        close(fd);
    /* Renamed since, by a rename made durable (the journal holds no undo for
     * it): the same inode under another name of the directory. */
    char dir[4096];
    const char *slash = strrchr(e->path, '/');
    snprintf(dir, sizeof(dir), "%.*s", slash ? (int)(slash - e->path) : 1,
             slash ? e->path : ".");
    DIR *d = opendir(dir);
    struct dirent *ent;
    fd = -1;
    while (d != NULL && fd < 0 && (ent = readdir(d)) != NULL) {
        char path[8192];
        snprintf(path, sizeof(path), "%s/%s", dir, ent->d_name);
        if (lstat(path, &st) == 0 && S_ISREG(st.st_mode) && st.st_dev == e->dev &&
            st.st_ino == e->ino)
            fd = open(path, O_WRONLY | O_CLOEXEC);
    }
    if (d != NULL)
        closedir(d);
    return fd;
}

static void undo_data(io_crash *c, ev *e)
{
    int fd = open_by_inode(e);
    if (fd < 0)
        return; /* the file is gone for good: nothing to undo */
    /* Torn: the new bytes stay up to a sector boundary of the file (a random
     * one within the write, or its start), and the write's part of the next
     * sector is garbage. */
    bool tear = c->mode == CRASH_TORN && e->kind == EV_WRITE && e->new_len > 0;
    uint64_t keep_new = 0; /* bytes of the new data that stay */
    if (tear) {
        uint64_t first = (SECTOR - e->off % SECTOR) % SECTOR; /* to the first boundary */
        uint64_t choices =
            (first > 0) +
            (first < e->new_len ? (e->new_len - first + SECTOR - 1) / SECTOR : 0);
        uint64_t i = next_rand(c) % choices;
        keep_new = first > 0 ? (i == 0 ? 0 : first + (i - 1) * SECTOR) : i * SECTOR;
    }
    uint64_t restore_from = keep_new;
    if (tear) {
        /* One torn sector after what stays: garbage, neither old nor new. */
        uint8_t junk[SECTOR];
        uint64_t to_boundary = SECTOR - (e->off + keep_new) % SECTOR;
        size_t n = (size_t)(e->new_len - keep_new < to_boundary ? e->new_len - keep_new
                                                                : to_boundary);
        for (size_t i = 0; i < n; i++)
            junk[i] = (uint8_t)next_rand(c);
        if (pwrite(fd, junk, n, (off_t)(e->off + keep_new)) == (ssize_t)n)
            c->torn++;
        restore_from = keep_new + n;
    }
    if (e->old_len > restore_from &&
        pwrite(fd, e->old + restore_from, e->old_len - restore_from,
               (off_t)(e->off + restore_from)) < 0)
        perror("crash: undo");
    uint64_t size = e->size;
    if (tear && e->off + restore_from > size)
        size = e->off + restore_from; /* the torn tail stays in the file */
    if (ftruncate(fd, (off_t)size) != 0)
        perror("crash: truncate");
    close(fd);
}

static void undo(io_crash *c, ev *e)
{
    switch (e->kind) {
    case EV_WRITE:
    case EV_TRUNC:
        undo_data(c, e);
        break;
    case EV_CREATE:
        unlink(e->path);
        break;
    case EV_RENAME:
        rename(e->path, e->from);
        if (e->backup != NULL && rename(e->backup, e->path) == 0) {
            free(e->backup);
            e->backup = NULL;
        }
        break;
    case EV_UNLINK:
        if (e->backup != NULL && rename(e->backup, e->path) == 0) {
            free(e->backup);
            e->backup = NULL;
        }
        break;
    }
    c->undone++;
}

int crash_before_call(io_crash *c)
{
    if (c->cut)
        return -EIO;
    if (++c->calls < c->cut_after || c->cut_after == 0)
        return 0;
    for (size_t i = c->n; i-- > 0;)
        undo(c, &c->v[i]);
    for (size_t i = 0; i < c->n; i++)
        ev_free(&c->v[i]);
    c->n = 0;
    c->cut = true;
    return -EIO;
}
