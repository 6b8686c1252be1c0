/*
 * io_tests.c - unit tests (Check) of ep_engine/io: the CRC-32C (known vector,
 * hardware and software agree on every length and alignment) and the fault
 * command parser and counters.
 */
#include "ep_engine/io/io.h"

#include "run_suite.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

START_TEST(crc32c_known_vector)
{
    ck_assert_uint_eq(io_crc32c(0, "123456789", 9), 0xE3069283u);
    ck_assert_uint_eq(io_crc32c_portable(0, "123456789", 9), 0xE3069283u);
    ck_assert_uint_eq(io_crc32c(0, "", 0), 0);
    /* Continuing from a partial checksum gives the whole one. */
    ck_assert_uint_eq(io_crc32c(io_crc32c(0, "1234", 4), "56789", 5), 0xE3069283u);
}
END_TEST

START_TEST(crc32c_hardware_matches_software)
{
    unsigned char buf[4096 + 16];
    srand(7);
    for (size_t i = 0; i < sizeof(buf); i++)
        buf[i] = (unsigned char)rand();
    for (size_t off = 0; off < 8; off++)
        for (size_t len = 0; len < 300; len++)
            ck_assert_uint_eq(io_crc32c(0, buf + off, len),
                              io_crc32c_portable(0, buf + off, len));
    ck_assert_uint_eq(io_crc32c(0, buf, 4096), io_crc32c_portable(0, buf, 4096));
}
END_TEST

START_TEST(fault_commands)
{
    ep_io *io = io_create();
    char why[256];
    ck_assert_int_eq(io_control(io, "op=fsync;nth=1;errno=EIO", why, sizeof(why)), 0);
    ck_assert_int_eq(io_control(io, "op=bogus;nth=1", why, sizeof(why)), -1);
    ck_assert_int_eq(io_control(io, "op=write;nth=0", why, sizeof(why)), -1);
    ck_assert_int_eq(io_control(io, "op=write;errno=EWHAT", why, sizeof(why)), -1);
    ck_assert(strstr(why, "EWHAT") != NULL);
    ck_assert_int_eq(io_control(io, "op=write;colour=red", why, sizeof(why)), -1);
    ck_assert_int_eq(io_control(io, "nonsense", why, sizeof(why)), -1);
    /* The armed fsync fault fires once, on the next call only. */
    char path[] = "/tmp/io_tests.XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_eq(io_fsync(io, fd), -EIO);
    ck_assert_int_eq(io_fsync(io, fd), 0);
    ck_assert_uint_eq(io_calls(io, IO_FSYNC), 2);
    /* A short write writes half, then fails. */
    ck_assert_int_eq(io_control(io, "op=write;nth=1;short=1", why, sizeof(why)), 0);
    ck_assert_int_eq(io_write_all(io, fd, "abcdefgh", 8), -ENOSPC);
    ck_assert_int_eq(lseek(fd, 0, SEEK_END), 4);
    /* count=0: every call from nth on, until cleared. */
    ck_assert_int_eq(
        io_control(io, "op=rename;nth=2;count=0;errno=EROFS", why, sizeof(why)), 0);
    ck_assert_int_eq(io_rename(io, "/nonexistent/a", "/nonexistent/b"), -ENOENT);
    ck_assert_int_eq(io_rename(io, "/nonexistent/a", "/nonexistent/b"), -EROFS);
    ck_assert_int_eq(io_rename(io, "/nonexistent/a", "/nonexistent/b"), -EROFS);
    ck_assert_int_eq(io_control(io, "clear", why, sizeof(why)), 0);
    ck_assert_int_eq(io_rename(io, "/nonexistent/a", "/nonexistent/b"), -ENOENT);
    close(fd);
    unlink(path);
    io_destroy(io);
}
END_TEST

/* ---- the power-loss model ---- */

static char dir[] = "/tmp/io_crash.XXXXXX";

static void path_in(char *buf, size_t cap, const char *name)
{
    snprintf(buf, cap, "%s/%s", dir, name);
}

/* The whole content of a file (NULL if it does not exist); its length. */
static char *slurp(const char *name, size_t *len)
{
    char p[256];
    path_in(p, sizeof(p), name);
    FILE *f = fopen(p, "rb");
    if (f == NULL)
        return NULL;
    static char buf[65536];
    *len = fread(buf, 1, sizeof(buf), f);
    fclose(f);
    return buf;
}

static void put(const char *name, const char *text)
{
    char p[256];
    path_in(p, sizeof(p), name);
    FILE *f = fopen(p, "wb");
    fputs(text, f);
    fclose(f);
}

static ep_io *armed(const char *spec)
{
    char why[128];
    ck_assert_ptr_nonnull(mkdtemp(strcpy(dir, "/tmp/io_crash.XXXXXX")));
    ep_io *io = io_create();
    ck_assert_int_eq(io_control(io, spec, why, sizeof(why)), 0);
    return io;
}

static void cut_now(ep_io *io)
{
    char why[64];
    /* Any call after the chosen one finds the power off. */
    ck_assert_int_eq(io_unlink(io, "/nonexistent/x"), -EIO);
    ck_assert_int_eq(io_control(io, "crash_state", why, sizeof(why)), 0);
    ck_assert_str_eq(why, "cut");
}

static void done(ep_io *io)
{
    char cmd[300];
    io_destroy(io);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    ck_assert_int_eq(system(cmd), 0);
}

START_TEST(power_cut_drops_what_was_not_synced)
{
    /* Calls: open, write, fsync, dirsync, pwrite, open, write, rename, unlink,
     * then the cut at the 10th. */
    ep_io *io = armed("crash=drop;cut_after=10");
    char p[256], q[256], r[256];
    put("old", "OLD");
    put("gone", "GONE");
    path_in(p, sizeof(p), "a");
    int fd = io_open(io, p, O_WRONLY | O_CREAT, 0644);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(io_write_all(io, fd, "synced", 6), 0);
    ck_assert_int_eq(io_fsync(io, fd), 0);
    ck_assert_int_eq(io_fsync_dir(io, dir), 0);
    ck_assert_int_eq(io_pwrite_all(io, fd, "LOST!!-and-more", 15, 3), 0);
    close(fd);
    path_in(q, sizeof(q), "new");
    fd = io_open(io, q, O_WRONLY | O_CREAT, 0644);
    ck_assert_int_eq(io_write_all(io, fd, "NEW", 3), 0);
    close(fd);
    path_in(r, sizeof(r), "old");
    ck_assert_int_eq(io_rename(io, q, r), 0);
    path_in(q, sizeof(q), "gone");
    ck_assert_int_eq(io_unlink(io, q), 0);
    cut_now(io);
    size_t len;
    char *got = slurp("a", &len);
    ck_assert(got != NULL && len == 6 && memcmp(got, "synced", 6) == 0);
    got = slurp("old", &len); /* the rename was not made durable */
    ck_assert(got != NULL && len == 3 && memcmp(got, "OLD", 3) == 0);
    ck_assert_ptr_null(slurp("new", &len)); /* nor the create */
    got = slurp("gone", &len);              /* nor the unlink */
    ck_assert(got != NULL && len == 4 && memcmp(got, "GONE", 4) == 0);
    done(io);
}
END_TEST

START_TEST(synced_names_and_data_survive)
{
    ep_io *io = armed("crash=drop;cut_after=6");
    char p[256], q[256];
    put("target", "T");
    path_in(p, sizeof(p), "tmp");
    int fd = io_open(io, p, O_WRONLY | O_CREAT, 0644);
    ck_assert_int_eq(io_write_all(io, fd, "manifest", 8), 0);
    ck_assert_int_eq(io_fsync(io, fd), 0);
    close(fd);
    path_in(q, sizeof(q), "target");
    ck_assert_int_eq(io_rename(io, p, q), 0);
    ck_assert_int_eq(io_fsync_dir(io, dir), 0);
    cut_now(io);
    size_t len;
    char *got = slurp("target", &len);
    ck_assert(got != NULL && len == 8 && memcmp(got, "manifest", 8) == 0);
    ck_assert_ptr_null(slurp("tmp", &len));
    done(io);
}
END_TEST

START_TEST(torn_write_keeps_sectors_and_tears_one)
{
    /* Over many seeds: the file is never the whole new write; it is the old
     * one with a prefix of whole new sectors, then one torn sector. */
    int torn_seen = 0;
    for (unsigned seed = 1; seed <= 40; seed++) {
        char spec[64], p[256], old[4097], fresh[4096];
        snprintf(spec, sizeof(spec), "crash=torn;cut_after=3;seed=%u", seed);
        ep_io *io = armed(spec);
        memset(old, 'o', sizeof(old) - 1);
        old[sizeof(old) - 1] = '\0';
        put("seg", old); /* on disk before the model was armed */
        memset(fresh, 'n', sizeof(fresh));
        path_in(p, sizeof(p), "seg");
        int fd = io_open(io, p, O_RDWR, 0);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(io_pwrite_all(io, fd, fresh, sizeof(fresh), 0), 0);
        close(fd);
        cut_now(io);
        size_t len;
        char *got = slurp("seg", &len);
        ck_assert(got != NULL && len == 4096);
        size_t k = 0;
        while (k < len && got[k] == 'n')
            k++;
        ck_assert_msg(k < len, "seed %u: the whole write stayed", seed);
        size_t start = k - k % 512, tail = start + 512;
        for (size_t i = tail; i < len; i++)
            ck_assert_msg(got[i] == 'o', "seed %u: byte %zu after the torn sector", seed,
                          i);
        int junk = 0;
        for (size_t i = start; i < tail; i++)
            junk += got[i] != 'o' && got[i] != 'n';
        torn_seen += junk > 0;
        done(io);
    }
    ck_assert_int_gt(torn_seen, 30);
}
END_TEST

START_TEST(broken_fsync_and_dirsync_keep_nothing)
{
    ep_io *io = armed("crash=drop;cut_after=8");
    char why[64], p[256], q[256];
    ck_assert_int_eq(io_control(io, "break=fsync", why, sizeof(why)), 0);
    ck_assert_int_eq(io_control(io, "break=dirsync_after_rename", why, sizeof(why)), 0);
    put("m", "v1");
    path_in(p, sizeof(p), "m.tmp");
    int fd = io_open(io, p, O_WRONLY | O_CREAT, 0644);
    ck_assert_int_eq(io_write_all(io, fd, "v2", 2), 0);
    ck_assert_int_eq(io_fsync(io, fd), 0); /* keeps nothing */
    close(fd);
    path_in(q, sizeof(q), "m");
    ck_assert_int_eq(io_rename(io, p, q), 0);
    ck_assert_int_eq(io_fsync_dir(io, dir), 0); /* after a rename: keeps nothing */
    path_in(p, sizeof(p), "d");
    fd = io_open(io, p, O_WRONLY | O_CREAT, 0644);
    ck_assert_int_eq(io_write_all(io, fd, "x", 1), 0);
    close(fd);
    cut_now(io);
    size_t len;
    char *got = slurp("m", &len);
    ck_assert(got != NULL && len == 2 && memcmp(got, "v1", 2) == 0);
    ck_assert_ptr_null(slurp("m.tmp", &len)); /* its data was never durable */
    done(io);
}
END_TEST

START_TEST(unsynced_data_of_a_renamed_file_is_dropped)
{
    /* write tmp (no fsync), rename it into place, sync the directory: the
     * name is durable, the data is not. Calls: open, write, rename, dirsync,
     * then the cut. */
    ep_io *io = armed("crash=drop;cut_after=5");
    char p[256], q[256];
    path_in(p, sizeof(p), "m.tmp");
    int fd = io_open(io, p, O_WRONLY | O_CREAT, 0644);
    ck_assert_int_eq(io_write_all(io, fd, "never synced", 12), 0);
    close(fd);
    path_in(q, sizeof(q), "m");
    ck_assert_int_eq(io_rename(io, p, q), 0);
    ck_assert_int_eq(io_fsync_dir(io, dir), 0);
    cut_now(io);
    size_t len;
    char *got = slurp("m", &len);
    ck_assert_msg(got != NULL && len == 0, "the renamed file kept %zu unsynced bytes",
                  got ? len : 0);
    done(io);
}
END_TEST

START_TEST(failed_calls_change_nothing_at_the_cut)
{
    /* A rename that fails (no source) over an existing target, an unlink of a
     * missing file and an exclusive create of an existing one: none of them
     * happened, so the cut has nothing of theirs to undo. Calls: rename,
     * unlink, open, then the cut. */
    ep_io *io = armed("crash=drop;cut_after=4");
    char p[256], q[256];
    put("target", "T");
    path_in(p, sizeof(p), "missing");
    path_in(q, sizeof(q), "target");
    ck_assert_int_lt(io_rename(io, p, q), 0);
    ck_assert_int_lt(io_unlink(io, p), 0);
    ck_assert_int_lt(io_open(io, q, O_WRONLY | O_CREAT | O_EXCL, 0644), 0);
    cut_now(io);
    size_t len;
    char *got = slurp("target", &len);
    ck_assert(got != NULL && len == 1 && got[0] == 'T');
    ck_assert_ptr_null(slurp("missing", &len));
    done(io);
}
END_TEST

START_TEST(unsynced_growth_is_undone)
{
    /* A truncation that grows a file, not synced. Calls: open, truncate, cut. */
    ep_io *io = armed("crash=drop;cut_after=3");
    char p[256];
    put("f", "abc");
    path_in(p, sizeof(p), "f");
    int fd = io_open(io, p, O_WRONLY, 0);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(io_truncate(io, fd, 4096), 0);
    close(fd);
    cut_now(io);
    size_t len;
    char *got = slurp("f", &len);
    ck_assert(got != NULL && len == 3 && memcmp(got, "abc", 3) == 0);
    done(io);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("io");
    TCase *tc = tcase_create("io");
    tcase_add_test(tc, crc32c_known_vector);
    tcase_add_test(tc, crc32c_hardware_matches_software);
    tcase_add_test(tc, fault_commands);
    tcase_add_test(tc, power_cut_drops_what_was_not_synced);
    tcase_add_test(tc, synced_names_and_data_survive);
    tcase_add_test(tc, torn_write_keeps_sectors_and_tears_one);
    tcase_add_test(tc, broken_fsync_and_dirsync_keep_nothing);
    tcase_add_test(tc, unsynced_data_of_a_renamed_file_is_dropped);
    tcase_add_test(tc, failed_calls_change_nothing_at_the_cut);
    tcase_add_test(tc, unsynced_growth_is_undone);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
