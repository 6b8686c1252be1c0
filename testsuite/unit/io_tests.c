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

int main(void)
{
    Suite *s = suite_create("io");
    TCase *tc = tcase_create("io");
    tcase_add_test(tc, crc32c_known_vector);
    tcase_add_test(tc, crc32c_hardware_matches_software);
    tcase_add_test(tc, fault_commands);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
