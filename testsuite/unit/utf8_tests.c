/*
 * utf8_tests.c - the one helper that makes client bytes valid UTF-8
 * (common/utf8.h), on every kind of ill-formed input.
 */
#include "../../common/utf8.h"
#include "run_suite.h"

#include <check.h>
#include <string.h>

#define R UTF8_REPLACEMENT

static const char *fix(const char *in, size_t len, size_t cap)
{
    static char out[256];
    size_t n = utf8_sanitize(out, cap, in, len);
    ck_assert_uint_eq(n, strlen(out));
    ck_assert(utf8_valid(out, n));
    return out;
}

#define FIX(lit) fix(lit, sizeof(lit) - 1, 256)

START_TEST(well_formed_text_is_kept)
{
    ck_assert_str_eq(FIX("plain \"quoted\" \\ \t ascii"), "plain \"quoted\" \\ \t ascii");
    ck_assert_str_eq(FIX("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"),
                     "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
    ck_assert_str_eq(FIX("\xef\xbf\xbf\xf4\x8f\xbf\xbf"), "\xef\xbf\xbf\xf4\x8f\xbf\xbf");
}
END_TEST

START_TEST(ill_formed_bytes_become_replacements)
{
    ck_assert_str_eq(FIX("a\xff"
                         "b"),
                     "a" R "b");
    ck_assert_str_eq(FIX("\x80\xbf"), R R);             /* lone continuations */
    ck_assert_str_eq(FIX("\xc0\x80"), R R);             /* overlong NUL */
    ck_assert_str_eq(FIX("\xe0\x80\xaf"), R R R);       /* overlong '/' */
    ck_assert_str_eq(FIX("\xf0\x80\x80\xaf"), R R R R); /* overlong '/' */
    ck_assert_str_eq(FIX("\xed\xa0\x80"), R R R);       /* a surrogate */
    ck_assert_str_eq(FIX("\xf4\x90\x80\x80"), R R R R); /* above U+10FFFF */
    ck_assert_str_eq(FIX("\xf5\xfe"), R R);
    ck_assert_str_eq(FIX("\xc3(x"), R "(x");  /* a bad second byte */
    ck_assert_str_eq(FIX("x\0y"), "x" R "y"); /* NUL */
}
END_TEST

START_TEST(a_sequence_cut_at_the_end_is_dropped)
{
    ck_assert_str_eq(FIX("ok\xe2\x82"), "ok");
    ck_assert_str_eq(FIX("ok\xf0\x9f\x98"), "ok");
    ck_assert_str_eq(FIX("\xc3"), "");
}
END_TEST

START_TEST(a_full_buffer_is_cut_on_a_character_boundary)
{
    /* "a" + e-acute (2 bytes): with room for 2 bytes and the NUL, only "a". */
    ck_assert_str_eq(fix("a\xc3\xa9", 3, 3), "a");
    ck_assert_str_eq(fix("a\xc3\xa9", 3, 4), "a\xc3\xa9");
    ck_assert_str_eq(fix("\xff", 1, 3), ""); /* no room for a replacement */
    ck_assert_str_eq(fix("abc", 3, 1), "");
    char big[200];
    memset(big, 0xff, sizeof(big));
    const char *out = fix(big, sizeof(big), 256);
    ck_assert_uint_eq(strlen(out), 255 / 3 * 3); /* whole replacements only */
}
END_TEST

START_TEST(validity)
{
    ck_assert(utf8_valid("", 0));
    ck_assert(utf8_valid("\xc3\xa9", 2));
    ck_assert(!utf8_valid("\xc3", 1));
    ck_assert(!utf8_valid("a\0b", 3));
    ck_assert(!utf8_valid("\xed\xbf\xbf", 3));
}
END_TEST

int main(void)
{
    Suite *s = suite_create("utf8");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, well_formed_text_is_kept);
    tcase_add_test(tc, ill_formed_bytes_become_replacements);
    tcase_add_test(tc, a_sequence_cut_at_the_end_is_dropped);
    tcase_add_test(tc, a_full_buffer_is_cut_on_a_character_boundary);
    tcase_add_test(tc, validity);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
