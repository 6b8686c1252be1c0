/*
 * json_tests.c - unit tests (Check) of ep_engine/collections/json.c, the
 * manifest's JSON reader: every value kind, string escapes and UTF-8 rules,
 * number edges, each error with its reason and position, duplicate keys in
 * small and large objects, the depth limit.
 */
#include "ep_engine/collections/json.h"

#include "run_suite.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static jv_doc *parse(const char *text, char *why)
{
    return jv_parse(text, strlen(text), why, 256);
}

/* Parses text that must fail; the reason must contain `expect`. */
static void bad(const char *text, size_t len, const char *expect)
{
    char why[256] = "";
    jv_doc *d = jv_parse(text, len, why, sizeof(why));
    if (d != NULL)
        ck_abort_msg("accepted: %.*s", (int)len, text);
    if (strstr(why, expect) == NULL)
        ck_abort_msg("%.*s: reason '%s' lacks '%s'", (int)len, text, why, expect);
}

#define BAD(text, expect) bad((text), strlen(text), (expect))

START_TEST(values)
{
    char why[256];
    jv_doc *d = parse(" {\"a\": [1, -2, 0, 3.5, 1e3, true, false, null, \"s\", {}, []],"
                      "\t\"b\" :{\"c\":\"d\"}}\n",
                      why);
    ck_assert_msg(d != NULL, "%s", why);
    const jv *root = jv_root(d);
    ck_assert(jv_is(root, JV_OBJECT));
    ck_assert_uint_eq(root->n, 2);
    const jv *a = jv_get(root, "a");
    ck_assert_uint_eq(jv_len(a), 11);
    ck_assert(jv_is(jv_at(a, 0), JV_INT) && jv_at(a, 0)->u.i == 1);
    ck_assert(jv_is(jv_at(a, 1), JV_INT) && jv_at(a, 1)->u.i == -2);
    ck_assert(jv_is(jv_at(a, 2), JV_INT) && jv_at(a, 2)->u.i == 0);
    ck_assert(jv_is(jv_at(a, 3), JV_REAL));
    ck_assert(jv_is(jv_at(a, 4), JV_REAL));
    ck_assert(jv_is(jv_at(a, 5), JV_TRUE));
    ck_assert(jv_is(jv_at(a, 6), JV_FALSE));
    ck_assert(jv_is(jv_at(a, 7), JV_NULL));
    ck_assert(jv_is(jv_at(a, 8), JV_STRING) && strcmp(jv_at(a, 8)->u.s, "s") == 0);
    ck_assert(jv_is(jv_at(a, 9), JV_OBJECT) && jv_at(a, 9)->n == 0);
    ck_assert(jv_is(jv_at(a, 10), JV_ARRAY) && jv_len(jv_at(a, 10)) == 0);
    const jv *c = jv_get(jv_get(root, "b"), "c");
    ck_assert(jv_is(c, JV_STRING) && c->n == 1 && strcmp(c->u.s, "d") == 0);
    ck_assert_ptr_null(jv_get(root, "missing"));
    ck_assert_ptr_null(jv_get(a, "a")); /* not an object */
    ck_assert_ptr_null(jv_get(NULL, "a"));
    ck_assert_uint_eq(jv_len(root), 0); /* not an array */
    ck_assert(strcmp(jv_key_at(root, 1)->u.s, "b") == 0);
    jv_free(d);

    d = parse("[]", why);
    ck_assert(d != NULL && jv_is(jv_root(d), JV_ARRAY));
    jv_free(d);
    jv_free(NULL);
}
END_TEST

START_TEST(strings)
{
    char why[256];
    /* Escapes, a 2-, 3- and 4-byte character raw and as \u (with a pair). */
    const char *text =
        "[\"\\\"\\\\\\/\\b\\f\\n\\r\\t\", \"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\","
        " \"\\u00e9\\u20AC\\ud83d\\ude00\", \"\\u0041\"]";
    jv_doc *d = parse(text, why);
    ck_assert_msg(d != NULL, "%s", why);
    const jv *a = jv_root(d);
    ck_assert_str_eq(jv_at(a, 0)->u.s, "\"\\/\b\f\n\r\t");
    ck_assert_uint_eq(jv_at(a, 0)->n, 8);
    ck_assert_str_eq(jv_at(a, 1)->u.s, "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80");
    ck_assert_str_eq(jv_at(a, 2)->u.s, "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80");
    ck_assert_str_eq(jv_at(a, 3)->u.s, "A");
    jv_free(d);

    BAD("[\"abc", "unterminated string");
    BAD("[\"a\\\"]", "unterminated string");
    BAD("[\"a\tb\"]", "control character 0x09");
    BAD("[\"a\\qb\"]", "invalid escape");
    BAD("[\"\\u12\"]", "invalid \\u escape");
    BAD("[\"\\uzzzz\"]", "invalid \\u escape");
    BAD("[\"\\u0000\"]", "\\u0000 is not allowed");
    BAD("[\"\\udc00\"]", "lone low surrogate");
    BAD("[\"\\ud800\"]", "without its pair");
    BAD("[\"\\ud800\\u0041\"]", "without its pair");
    BAD("[\"\xc0\xaf\"]", "invalid UTF-8");         /* overlong */
    BAD("[\"\xe0\x80\xaf\"]", "invalid UTF-8");     /* overlong */
    BAD("[\"\xed\xa0\x80\"]", "invalid UTF-8");     /* encoded surrogate */
    BAD("[\"\xf4\x90\x80\x80\"]", "invalid UTF-8"); /* above U+10FFFF */
    BAD("[\"\xe2\x82\"]", "invalid UTF-8");         /* cut short */
    BAD("[\"\x80\"]", "invalid UTF-8");             /* lone continuation */
    BAD("[\"\xff\"]", "invalid UTF-8");
    bad("[\"a\0b\"]", 7, "control character 0x00"); /* a raw NUL */
}
END_TEST

START_TEST(numbers)
{
    char why[256];
    jv_doc *d = parse("[9223372036854775807, -9223372036854775808, -0, 0.0, 1E+2, 2e-3, "
                      "123456789012345678901234567890.5]",
                      why);
    ck_assert_msg(d != NULL, "%s", why);
    const jv *a = jv_root(d);
    ck_assert(jv_at(a, 0)->u.i == INT64_MAX);
    ck_assert(jv_at(a, 1)->u.i == INT64_MIN);
    ck_assert(jv_is(jv_at(a, 2), JV_INT) && jv_at(a, 2)->u.i == 0);
    for (size_t i = 3; i < 7; i++)
        ck_assert(jv_is(jv_at(a, i), JV_REAL));
    jv_free(d);

    BAD("[9223372036854775808]", "integer too big");
    BAD("[-9223372036854775809]", "integer too big");
    BAD("[99999999999999999999999]", "integer too big");
    BAD("[01]", "',' or ']' expected");
    BAD("[-]", "invalid number");
    BAD("[1.]", "a digit must follow '.'");
    BAD("[1e]", "a digit must follow the exponent");
    BAD("[+1]", "invalid token");
    BAD("[.5]", "invalid token");
    BAD("[0x10]", "',' or ']' expected");
}
END_TEST

START_TEST(structure_errors)
{
    BAD("", "'{' or '[' expected");
    BAD("   ", "'{' or '[' expected");
    BAD("\"text\"", "'{' or '[' expected");
    BAD("42", "'{' or '[' expected");
    BAD("{", "string or '}' expected");
    BAD("[", "unexpected end of input");
    BAD("[1,]", "invalid token");
    BAD("[1 2]", "',' or ']' expected");
    BAD("{\"a\" 1}", "':' expected");
    BAD("{\"a\":1,}", "string or '}' expected");
    BAD("{a:1}", "string or '}' expected");
    BAD("{\"a\":1} x", "end of input expected");
    BAD("{\"a\":1}{}", "end of input expected");
    BAD("[tru]", "invalid token");
    BAD("[nul]", "invalid token");
    BAD("[True]", "invalid token");
    /* Positions count lines and columns from 1. */
    BAD("{\n  \"a\": 1,\n  \"b\": ?\n}", "at line 3, column 8");
}
END_TEST

START_TEST(duplicate_keys)
{
    BAD("{\"a\":1,\"b\":2,\"a\":3}", "duplicate object key \"a\"");
    /* A big object is checked by sorting, with the same result. */
    char *text = malloc(200000);
    size_t n = (size_t)sprintf(text, "{");
    for (int i = 0; i < 5000; i++)
        n += (size_t)sprintf(text + n, "%s\"k%d\":%d", i ? "," : "", i, i);
    char why[256];
    strcpy(text + n, "}");
    jv_doc *d = jv_parse(text, n + 1, why, sizeof(why));
    ck_assert_msg(d != NULL, "%s", why);
    ck_assert_uint_eq(jv_root(d)->n, 5000);
    ck_assert(jv_get(jv_root(d), "k4999")->u.i == 4999);
    jv_free(d);
    n += (size_t)sprintf(text + n, ",\"k1234\":0}");
    bad(text, n, "duplicate object key \"k1234\"");
    /* Same bytes, different lengths: not duplicates. */
    d = parse("{\"ab\":1,\"a\":2,\"abc\":3}", why);
    ck_assert_msg(d != NULL, "%s", why);
    jv_free(d);
    free(text);
}
END_TEST

START_TEST(depth_limit)
{
    char text[2 * JV_MAX_DEPTH + 8], why[256];
    int d = JV_MAX_DEPTH;
    memset(text, '[', (size_t)d);
    memset(text + d, ']', (size_t)d);
    text[2 * d] = '\0';
    jv_doc *doc = parse(text, why);
    ck_assert_msg(doc != NULL, "%s", why);
    jv_free(doc);
    memset(text, '[', (size_t)d + 1);
    memset(text + d + 1, ']', (size_t)d + 1);
    text[2 * d + 2] = '\0';
    BAD(text, "nested deeper than");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("json");
    TCase *tc = tcase_create("parse");
    tcase_add_test(tc, values);
    tcase_add_test(tc, strings);
    tcase_add_test(tc, numbers);
    tcase_add_test(tc, structure_errors);
    tcase_add_test(tc, duplicate_keys);
    tcase_add_test(tc, depth_limit);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
