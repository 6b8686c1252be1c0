/*
 * subdoc_tests.c - Check tests of sub-document paths and operations
 * (ep_engine/subdoc): every operation, its flags and its error statuses, on
 * small documents whose result is compared as JSON.
 */
#include "ep_engine/subdoc/subdoc.h"

#include "run_suite.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

/* Runs op on the document `doc` (JSON text); the status, the document after
 * (compact JSON in *after, caller frees) and the result (in *res). */
static sd_status run(const char *doc, sd_op op, unsigned flags, const char *path,
                     const char *value, char **after, char **res)
{
    json_t *d;
    ck_assert_int_eq(sd_parse_doc(doc, strlen(doc), &d), SD_OK);
    size_t rlen;
    sd_status st = sd_execute(&d, op, flags, path, strlen(path), value,
                              value ? strlen(value) : 0, res, &rlen);
    *after = json_dumps(d, JSON_COMPACT | JSON_ENCODE_ANY | JSON_SORT_KEYS);
    json_decref(d);
    return st;
}

/* op succeeds and leaves `want` (sorted keys); result `res_want` or NULL. */
static void ok(const char *doc, sd_op op, unsigned flags, const char *path,
               const char *value, const char *want, const char *res_want)
{
    char *after, *res;
    sd_status st = run(doc, op, flags, path, value, &after, &res);
    ck_assert_msg(st == SD_OK, "%s on %s: %s", path, doc, sd_status_name(st));
    ck_assert_str_eq(after, want);
    if (res_want != NULL)
        ck_assert_str_eq(res, res_want);
    else
        ck_assert_ptr_null(res);
    free(after);
    free(res);
}

/* op fails with `want`. */
static void fails(const char *doc, sd_op op, unsigned flags, const char *path,
                  const char *value, sd_status want)
{
    char *after, *res;
    sd_status st = run(doc, op, flags, path, value, &after, &res);
    ck_assert_msg(st == want, "%s on %s: %s, not %s", path, doc, sd_status_name(st),
                  sd_status_name(want));
    free(after);
    free(res);
}

static const char *DOC = "{\"a\":{\"b\":[1,2,{\"c\":\"x\"}]},\"n\":5,\"s\":\"str\","
                         "\"dot.ted\":{\"back`tick\":true}}";

START_TEST(paths)
{
    sd_path p;
    ck_assert_int_eq(sd_path_parse("a.b[2].c", 8, &p), SD_OK);
    ck_assert_uint_eq(p.n, 4);
    ck_assert(p.c[2].is_index && p.c[2].index == 2);
    ck_assert_str_eq(p.c[3].name, "c");
    ck_assert_int_eq(sd_path_parse("`dot.ted`.`back``tick`", 22, &p), SD_OK);
    ck_assert_str_eq(p.c[0].name, "dot.ted");
    ck_assert_str_eq(p.c[1].name, "back`tick");
    ck_assert_int_eq(sd_path_parse("a[-1]", 5, &p), SD_OK);
    ck_assert(p.c[1].index == -1);
    const char *bad[] = {"a.", ".a",    "a..b", "a[", "a[x]",     "a[-2]",     "a]",
                         "`a", "a[1]b", "a[1",  "[]", "\xff\xfe", "a.\xc0\x80"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ck_assert_msg(sd_path_parse(bad[i], strlen(bad[i]), &p) == SD_PATH_EINVAL, "%s",
                      bad[i]);
    char deep[200] = "a";
    for (int i = 0; i < 32; i++)
        strcat(deep, ".a");
    ck_assert_int_eq(sd_path_parse(deep, strlen(deep), &p), SD_PATH_E2BIG);
    char longp[SD_MAX_PATH + 2];
    memset(longp, 'a', sizeof(longp) - 1);
    longp[sizeof(longp) - 1] = '\0';
    ck_assert_int_eq(sd_path_parse(longp, strlen(longp), &p), SD_PATH_E2BIG);
}
END_TEST

START_TEST(lookups)
{
    char *after, *res;
    ck_assert_int_eq(run(DOC, SD_GET, 0, "a.b[2].c", NULL, &after, &res), SD_OK);
    ck_assert_str_eq(res, "\"x\"");
    free(after);
    free(res);
    ck_assert_int_eq(run(DOC, SD_GET, 0, "a.b[-1]", NULL, &after, &res), SD_OK);
    ck_assert_str_eq(res, "{\"c\":\"x\"}");
    free(after);
    free(res);
    ck_assert_int_eq(run(DOC, SD_GET, 0, "`dot.ted`.`back``tick`", NULL, &after, &res),
                     SD_OK);
    ck_assert_str_eq(res, "true");
    free(after);
    free(res);
    ck_assert_int_eq(run(DOC, SD_GET_COUNT, 0, "a.b", NULL, &after, &res), SD_OK);
    ck_assert_str_eq(res, "3");
    free(after);
    free(res);
    ck_assert_int_eq(run(DOC, SD_EXISTS, 0, "n", NULL, &after, &res), SD_OK);
    free(after);
    fails(DOC, SD_GET, 0, "a.z", NULL, SD_PATH_ENOENT);
    fails(DOC, SD_GET, 0, "a.b[3]", NULL, SD_PATH_ENOENT);
    fails(DOC, SD_GET, 0, "a.b.c", NULL, SD_PATH_MISMATCH);
    fails(DOC, SD_GET, 0, "s.x", NULL, SD_PATH_MISMATCH);
    fails(DOC, SD_GET, 0, "n[0]", NULL, SD_PATH_MISMATCH);
    fails(DOC, SD_GET_COUNT, 0, "n", NULL, SD_PATH_MISMATCH);
    fails(DOC, SD_EXISTS, 0, "nope", NULL, SD_PATH_ENOENT);
    fails(DOC, SD_GET, 0, "", NULL, SD_PATH_EINVAL);
}
END_TEST

START_TEST(dictionary)
{
    ok("{\"a\":1}", SD_DICT_ADD, 0, "b", "{\"x\":[1]}", "{\"a\":1,\"b\":{\"x\":[1]}}",
       NULL);
    fails("{\"a\":1}", SD_DICT_ADD, 0, "a", "2", SD_PATH_EEXISTS);
    ok("{\"a\":1}", SD_DICT_UPSERT, 0, "a", "2", "{\"a\":2}", NULL);
    fails("{\"a\":1}", SD_DICT_UPSERT, 0, "x.y", "2", SD_PATH_ENOENT);
    ok("{\"a\":1}", SD_DICT_UPSERT, SD_MKDIR_P, "x.y.z", "2",
       "{\"a\":1,\"x\":{\"y\":{\"z\":2}}}", NULL);
    fails("{\"a\":[1]}", SD_DICT_UPSERT, 0, "a[0]", "2", SD_PATH_EINVAL);
    fails("{\"a\":1}", SD_DICT_UPSERT, 0, "a.b", "2", SD_PATH_MISMATCH);
    fails("{\"a\":1}", SD_DICT_UPSERT, 0, "b", "not json", SD_VALUE_CANTINSERT);
    fails("{\"a\":1}", SD_DICT_UPSERT, 0, "b", "", SD_VALUE_CANTINSERT);
    ok("{\"a\":1,\"b\":2}", SD_DELETE, 0, "a", NULL, "{\"b\":2}", NULL);
    fails("{\"a\":1}", SD_DELETE, 0, "b", NULL, SD_PATH_ENOENT);
    ok("{\"a\":[1,2,3]}", SD_DELETE, 0, "a[-1]", NULL, "{\"a\":[1,2]}", NULL);
    ok("{\"a\":1}", SD_REPLACE, 0, "a", "\"v\"", "{\"a\":\"v\"}", NULL);
    fails("{\"a\":1}", SD_REPLACE, SD_MKDIR_P, "b", "1", SD_PATH_ENOENT);
    ok("{\"a\":[1,2]}", SD_REPLACE, 0, "a[1]", "9", "{\"a\":[1,9]}", NULL);
}
END_TEST

START_TEST(arrays)
{
    ok("{\"a\":[1]}", SD_ARRAY_PUSH_LAST, 0, "a", "2,3", "{\"a\":[1,2,3]}", NULL);
    ok("{\"a\":[1]}", SD_ARRAY_PUSH_FIRST, 0, "a", "-1,0", "{\"a\":[-1,0,1]}", NULL);
    ok("[1]", SD_ARRAY_PUSH_LAST, 0, "", "2", "[1,2]", NULL);
    fails("{\"a\":[1]}", SD_ARRAY_PUSH_LAST, 0, "b", "2", SD_PATH_ENOENT);
    ok("{}", SD_ARRAY_PUSH_LAST, SD_MKDIR_P, "x.list", "\"v\"",
       "{\"x\":{\"list\":[\"v\"]}}", NULL);
    fails("{\"a\":{}}", SD_ARRAY_PUSH_LAST, 0, "a", "2", SD_PATH_MISMATCH);
    fails("{\"a\":[1]}", SD_ARRAY_PUSH_LAST, 0, "a", "2,", SD_VALUE_CANTINSERT);
    ok("{\"a\":[1,3]}", SD_ARRAY_INSERT, 0, "a[1]", "2", "{\"a\":[1,2,3]}", NULL);
    ok("{\"a\":[1]}", SD_ARRAY_INSERT, 0, "a[1]", "2", "{\"a\":[1,2]}", NULL);
    fails("{\"a\":[1]}", SD_ARRAY_INSERT, 0, "a[3]", "2", SD_PATH_ENOENT);
    fails("{\"a\":[1]}", SD_ARRAY_INSERT, 0, "a[-1]", "2", SD_PATH_EINVAL);
    fails("{\"a\":[1]}", SD_ARRAY_INSERT, 0, "a", "2", SD_PATH_EINVAL);
    ok("{\"a\":[1,\"x\"]}", SD_ARRAY_ADD_UNIQUE, 0, "a", "2", "{\"a\":[1,\"x\",2]}",
       NULL);
    fails("{\"a\":[1,\"x\"]}", SD_ARRAY_ADD_UNIQUE, 0, "a", "\"x\"", SD_PATH_EEXISTS);
    fails("{\"a\":[1,[2]]}", SD_ARRAY_ADD_UNIQUE, 0, "a", "3", SD_PATH_MISMATCH);
    fails("{\"a\":[1]}", SD_ARRAY_ADD_UNIQUE, 0, "a", "{\"o\":1}", SD_VALUE_CANTINSERT);
}
END_TEST

START_TEST(counters)
{
    ok("{\"n\":5}", SD_COUNTER, 0, "n", "10", "{\"n\":15}", "15");
    ok("{\"n\":5}", SD_COUNTER, 0, "n", "-7", "{\"n\":-2}", "-2");
    ok("{}", SD_COUNTER, 0, "m", "3", "{\"m\":3}", "3");
    ok("{}", SD_COUNTER, SD_MKDIR_P, "x.m", "3", "{\"x\":{\"m\":3}}", "3");
    fails("{\"n\":\"s\"}", SD_COUNTER, 0, "n", "1", SD_PATH_MISMATCH);
    fails("{\"n\":1.5}", SD_COUNTER, 0, "n", "1", SD_PATH_MISMATCH);
    fails("{\"n\":5}", SD_COUNTER, 0, "n", "0", SD_DELTA_EINVAL);
    fails("{\"n\":5}", SD_COUNTER, 0, "n", "x", SD_DELTA_EINVAL);
    fails("{\"n\":5}", SD_COUNTER, 0, "n", "1.5", SD_DELTA_EINVAL);
    fails("{\"n\":5}", SD_COUNTER, 0, "n", "99999999999999999999", SD_DELTA_EINVAL);
    fails("{\"n\":9223372036854775807}", SD_COUNTER, 0, "n", "1", SD_VALUE_CANTINSERT);
    fails("{\"n\":-9223372036854775808}", SD_COUNTER, 0, "n", "-1", SD_VALUE_CANTINSERT);
    fails("{}", SD_COUNTER, 0, "x.m", "3", SD_PATH_ENOENT);
}
END_TEST

START_TEST(depth_limits)
{
    char doc[512] = "", *p = doc;
    for (int i = 0; i < 33; i++)
        p += sprintf(p, "{\"a\":");
    p += sprintf(p, "1");
    for (int i = 0; i < 33; i++)
        *p++ = '}';
    *p = '\0';
    json_t *d;
    ck_assert_int_eq(sd_parse_doc(doc, strlen(doc), &d), SD_DOC_E2DEEP);
    ck_assert_int_eq(sd_parse_doc("{\"a\":", 5, &d), SD_DOC_NOTJSON);
    /* A value that makes the document too deep. */
    char val[512] = "";
    p = val;
    for (int i = 0; i < 32; i++)
        p += sprintf(p, "[");
    for (int i = 0; i < 32; i++)
        *p++ = ']';
    *p = '\0';
    fails("{}", SD_DICT_UPSERT, 0, "v", val, SD_VALUE_ETOODEEP);
}
END_TEST

static Suite *subdoc_suite(void)
{
    Suite *s = suite_create("subdoc");
    TCase *tc = tcase_create("subdoc");
    tcase_add_test(tc, paths);
    tcase_add_test(tc, lookups);
    tcase_add_test(tc, dictionary);
    tcase_add_test(tc, arrays);
    tcase_add_test(tc, counters);
    tcase_add_test(tc, depth_limits);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(subdoc_suite());
}
