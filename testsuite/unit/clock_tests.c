/*
 * clock_tests.c - the hosts' server-API clock (host/clock.h): monotonic, and
 * deaf to steps of the wall clock.
 */
#include "../../host/clock.h"
#include "run_suite.h"

#include <check.h>

#define S INT64_C(1000000000)

static int64_t fake_wall, fake_mono;

static int64_t wall(void)
{
    return fake_wall;
}

static int64_t mono(void)
{
    return fake_mono;
}

static host_clock fresh(void)
{
    fake_wall = 1700000000 * S;
    fake_mono = 5000 * S;
    host_clock c;
    host_clock_init(&c, wall, mono);
    return c;
}

START_TEST(starts_two_seconds_in_and_counts_the_monotonic_clock)
{
    host_clock c = fresh();
    ck_assert_uint_eq(host_clock_now(&c), 2);
    fake_mono += 10 * S + S / 2;
    ck_assert_uint_eq(host_clock_now(&c), 12);
    ck_assert_int_eq(host_clock_abstime(&c, 12), 1700000010);
}
END_TEST

START_TEST(a_wall_clock_step_moves_nothing)
{
    host_clock c = fresh();
    fake_mono += 100 * S;
    engine_rel_time before = host_clock_now(&c);
    engine_rel_time expiry = host_clock_realtime(&c, 60); /* relative */
    engine_rel_time absolute = host_clock_realtime(&c, 1700000500);
    /* The operator sets the clock an hour back, then a day forward. */
    fake_wall -= 3600 * S;
    ck_assert_uint_eq(host_clock_now(&c), before);
    ck_assert_uint_eq(host_clock_realtime(&c, 60), expiry);
    ck_assert_uint_eq(host_clock_realtime(&c, 1700000500), absolute);
    fake_wall += 86400 * S;
    ck_assert_uint_eq(host_clock_now(&c), before);
    ck_assert_int_eq(host_clock_abstime(&c, before), 1700000100);
}
END_TEST

START_TEST(expiry_conversions)
{
    host_clock c = fresh();
    ck_assert_uint_eq(host_clock_realtime(&c, 0), 0);
    ck_assert_uint_eq(host_clock_realtime(&c, 30), 32);
    /* Up to 30 days is relative; beyond is a Unix time. */
    ck_assert_uint_eq(host_clock_realtime(&c, 2592000), 2592002);
    ck_assert_uint_eq(host_clock_realtime(&c, 1700000100), 102);
    /* A Unix time at or before the start is already expired. */
    ck_assert_uint_eq(host_clock_realtime(&c, 1699999998), 1);
    ck_assert_uint_eq(host_clock_realtime(&c, 2592001), 1);
}
END_TEST

START_TEST(advance_moves_now_forward)
{
    host_clock c = fresh();
    host_clock_advance(&c, 100);
    ck_assert_uint_eq(host_clock_now(&c), 102);
    ck_assert_uint_eq(host_clock_realtime(&c, 10), 112);
}
END_TEST

START_TEST(system_clock_is_monotonic)
{
    host_clock c;
    host_clock_init(&c, NULL, NULL);
    engine_rel_time a = host_clock_now(&c);
    ck_assert_uint_ge(a, 2);
    ck_assert_uint_ge(host_clock_now(&c), a);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("clock");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, starts_two_seconds_in_and_counts_the_monotonic_clock);
    tcase_add_test(tc, a_wall_clock_step_moves_nothing);
    tcase_add_test(tc, expiry_conversions);
    tcase_add_test(tc, advance_moves_now_forward);
    tcase_add_test(tc, system_clock_is_monotonic);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
