/*
 * run_suite.h - the end of every Check test's main(): runs a suite, writes
 * one TAP line per case to stdout (meson counts them), and turns the result
 * into the exit status.
 */
#ifndef EP_RUN_SUITE_H
#define EP_RUN_SUITE_H

#include <check.h>

static inline int run_suite(Suite *s)
{
    SRunner *sr = srunner_create(s);
    srunner_set_tap(sr, "-");
    srunner_run_all(sr, CK_SILENT);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}

#endif
