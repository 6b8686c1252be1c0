/*
 * manifest_tests.c - unit tests (Check) of ep_engine/collections/manifest.c:
 * every validation rule with its expected code, names of every single byte,
 * length and digit-count boundaries, the successor rules, lookups, printing.
 *
 * Manifests are written with ' for " to keep them readable.
 */
#include "ep_engine/collections/manifest.h"

#include "run_suite.h"

#include <check.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const coll_limits limits = {100, 1000, 0};

/* ' -> " */
static char *q(const char *text)
{
    static char buf[8][65536];
    static int next;
    char *out = buf[next++ % 8];
    size_t i = 0;
    for (; text[i] != '\0' && i < sizeof(buf[0]) - 1; i++)
        out[i] = text[i] == '\'' ? '"' : text[i];
    out[i] = '\0';
    return out;
}

static engine_errc parse(const char *json, coll_manifest **out, char *why, size_t whylen)
{
    return coll_manifest_parse(json, strlen(json), &limits, out, why, whylen);
}

#define DEFAULT_SCOPE                                                                    \
    "{'name':'_default','uid':'0','collections':[{'name':'_default','uid':'0'}]}"
#define EMPTY_DEFAULT "{'name':'_default','uid':'0','collections':[]}"

typedef struct invalid_case {
    const char *json;
    const char *reason_has; /* a word the reason must contain */
} invalid_case;

/* Each is rejected with ENGINE_INVALID_ARGUMENTS. */
static const invalid_case invalid_cases[] = {
    {"", "JSON"},
    {"{", "JSON"},
    {"null", "JSON"},
    {"[]", "object"},
    {"'x'", "JSON"},
    {"42", "JSON"},
    {"{}", "uid"},
    {"{'scopes':[" DEFAULT_SCOPE "]}", "uid"},
    {"{'uid':'1'}", "scopes"},
    {"{'uid':1,'scopes':[" DEFAULT_SCOPE "]}", "hex"},
    {"{'uid':'','scopes':[" DEFAULT_SCOPE "]}", "hex"},
    {"{'uid':'0x1','scopes':[" DEFAULT_SCOPE "]}", "hex"},
    {"{'uid':'g','scopes':[" DEFAULT_SCOPE "]}", "hex"},
    {"{'uid':'-1','scopes':[" DEFAULT_SCOPE "]}", "hex"},
    {"{'uid':' 1','scopes':[" DEFAULT_SCOPE "]}", "hex"},
    {"{'uid':'12345678901234567','scopes':[" DEFAULT_SCOPE "]}", "hex"},
    {"{'uid':null,'scopes':[" DEFAULT_SCOPE "]}", "hex"},
    {"{'uid':'1','scopes':{}}", "array"},
    {"{'uid':'1','scopes':'x'}", "array"},
    {"{'uid':'1','scopes':[]}", "_default scope"},
    {"{'uid':'1','scopes':[42]}", "object"},
    {"{'uid':'1','scopes':[{'name':'_default','uid':'0'}]}", "collections"},
    {"{'uid':'1','scopes':[{'name':'_default','uid':'0','collections':{}}]}",
     "collections"},
    {"{'uid':'1','scopes':[{'uid':'0','collections':[]}]}", "name"},
    {"{'uid':'1','scopes':[{'name':'_default','collections':[]}]}", "uid"},
    {"{'uid':'1','scopes':[{'name':7,'uid':'0','collections':[]}]}", "string"},
    {"{'uid':'1','scopes':[{'name':'_default','uid':0,'collections':[]}]}", "hex"},
    {"{'uid':'1','scopes':[{'name':'s','uid':'8','collections':[]}]}", "_default scope"},
    {"{'uid':'1','scopes':[{'name':'_default','uid':'8','collections':[]}]}", "uid 0"},
    {"{'uid':'1','scopes':[" EMPTY_DEFAULT ",{'name':'s','uid':'0','collections':[]}]}",
     "uid 0"},
    {"{'uid':'1','scopes':[" EMPTY_DEFAULT ",{'name':'s','uid':'1','collections':[]}]}",
     "reserved"},
    {"{'uid':'1','scopes':[" EMPTY_DEFAULT ",{'name':'s','uid':'7','collections':[]}]}",
     "reserved"},
    {"{'uid':'1','scopes':[" EMPTY_DEFAULT
     ",{'name':'s','uid':'123456789','collections':[]}]}",
     "hex"},
    {"{'uid':'1','scopes':[" EMPTY_DEFAULT ",{'name':'s','uid':'8','collections':[]},"
     "{'name':'t','uid':'8','collections':[]}]}",
     "share uid"},
    {"{'uid':'1','scopes':[" EMPTY_DEFAULT ",{'name':'s','uid':'8','collections':[]},"
     "{'name':'s','uid':'9','collections':[]}]}",
     "duplicate scope name"},
    {"{'uid':'1','scopes':[" EMPTY_DEFAULT "," EMPTY_DEFAULT "]}", "share uid"},
    {"{'uid':'1','scopes':[" EMPTY_DEFAULT ",{'name':'','uid':'8','collections':[]}]}",
     "name"},
    {"{'uid':'1','scopes':[" EMPTY_DEFAULT ",{'name':'a b','uid':'8','collections':[]}]}",
     "name"},
    {"{'uid':'1','scopes':[" EMPTY_DEFAULT ",{'name':'a.b','uid':'8','collections':[]}]}",
     "name"},
    {"{'uid':'1','scopes':[" EMPTY_DEFAULT ",{'name':'$s','uid':'8','collections':[]}]}",
     "name"},
    {"{'uid':'1','scopes':[" EMPTY_DEFAULT
     ",{'name':'caf\\u00e9','uid':'8','collections':[]}]}",
     "name"},
    {"{'uid':'1','scopes':[{'name':'_default','uid':'0','collections':[7]}]}", "object"},
    {"{'uid':'1','scopes':[{'name':'_default','uid':'0','collections':[{'uid':'8'}]}]}",
     "name"},
    {"{'uid':'1','scopes':[{'name':'_default','uid':'0','collections':[{'name':'c'}]}]}",
     "uid"},
    {"{'uid':'1','scopes':[{'name':'_default','uid':'0','collections':[{'name':'c','uid':"
     "'2'}]}]}",
     "reserved"},
    {"{'uid':'1','scopes':[{'name':'_default','uid':'0','collections':[{'name':'c','uid':"
     "'0'}]}]}",
     "uid 0"},
    {"{'uid':'1','scopes':[{'name':'_default','uid':'0','collections':[{'name':'_default'"
     ",'uid':"
     "'8'}]}]}",
     "uid 0"},
    {"{'uid':'1','scopes':[{'name':'_default','uid':'0','collections':[{'name':'c','uid':"
     "'8'},{'"
     "name':'d','uid':'8'}]}]}",
     "share uid"},
    {"{'uid':'1','scopes':[{'name':'_default','uid':'0','collections':[{'name':'c','uid':"
     "'8'},{'"
     "name':'c','uid':'9'}]}]}",
     "duplicate collection name"},
    {"{'uid':'1','scopes':[" EMPTY_DEFAULT
     ",{'name':'s','uid':'8','collections':[{'name':'c',"
     "'uid':'9'}]},{'name':'t','uid':'a','collections':[{'name':'d','uid':'9'}]}]}",
     "share uid"},
    {"{'uid':'1','scopes':[" EMPTY_DEFAULT
     ",{'name':'s','uid':'8','collections':[{'name':'_"
     "default','uid':'0'}]}]}",
     "_default scope"},
    {"{'uid':'1','scopes':[{'name':'_default','uid':'0','collections':[{'name':'c','uid':"
     "'8',"
     "'maxTTL':-1}]}]}",
     "maxTTL"},
    {"{'uid':'1','scopes':[{'name':'_default','uid':'0','collections':[{'name':'c','uid':"
     "'8',"
     "'maxTTL':2147483648}]}]}",
     "maxTTL"},
    {"{'uid':'1','scopes':[{'name':'_default','uid':'0','collections':[{'name':'c','uid':"
     "'8',"
     "'maxTTL':'10'}]}]}",
     "maxTTL"},
    {"{'uid':'1','scopes':[{'name':'_default','uid':'0','collections':[{'name':'c','uid':"
     "'8',"
     "'maxTTL':1.5}]}]}",
     "maxTTL"},
    {"{'uid':'1','scopes':[{'name':'_default','uid':'0','collections':[{'name':'c','uid':"
     "'8',"
     "'maxTTL':true}]}]}",
     "maxTTL"},
    {"{'uid':'1','scopes':[{'name':'_default','uid':'0','collections':[{'name':'c','uid':"
     "'8',"
     "'maxTTL':null}]}]}",
     "maxTTL"},
    {"{'uid':'1','uid':'2','scopes':[" DEFAULT_SCOPE "]}", "JSON"},
    {"{'uid':'0','scopes':[" EMPTY_DEFAULT "]}", "epoch"},
    {"{'uid':'0','scopes':[{'name':'_default','uid':'0','collections':[{'name':'_default'"
     ",'uid':"
     "'0','maxTTL':5}]}]}",
     "epoch"},
    {"{'uid':'0','scopes':[" DEFAULT_SCOPE ",{'name':'s','uid':'8','collections':[]}]}",
     "epoch"},
    {"{'uid':'1','scopes':[" DEFAULT_SCOPE "]} trailing", "JSON"},
    {"{'uid':'1','scopes':[" DEFAULT_SCOPE
     ",{'name':'s','uid':'8','collections':[{'name':'_"
     "default','uid':'9'}]}]}",
     "uid 0"},
    {"{'uid':'1','scopes':[" DEFAULT_SCOPE "],}", "JSON"},
};

START_TEST(invalid_manifests)
{
    ck_assert_uint_ge(sizeof(invalid_cases) / sizeof(invalid_cases[0]), 60);
    for (size_t i = 0; i < sizeof(invalid_cases) / sizeof(invalid_cases[0]); i++) {
        coll_manifest *m = NULL;
        char why[512] = "";
        engine_errc rc = parse(q(invalid_cases[i].json), &m, why, sizeof(why));
        ck_assert_msg(rc == ENGINE_INVALID_ARGUMENTS, "case %zu (%s): rc 0x%x", i,
                      invalid_cases[i].json, rc);
        ck_assert_ptr_null(m);
        ck_assert_msg(strstr(why, invalid_cases[i].reason_has) != NULL,
                      "case %zu (%s): reason '%s' lacks '%s'", i, invalid_cases[i].json,
                      why, invalid_cases[i].reason_has);
    }
}
END_TEST

/* Each is accepted; the number is how many collections it has. */
static const struct {
    const char *json;
    size_t collections;
} valid_cases[] = {
    {"{'uid':'0','scopes':[" DEFAULT_SCOPE "]}", 1},
    {"{'uid':'1','scopes':[" DEFAULT_SCOPE "]}", 1},
    {"{'uid':'1','scopes':[" EMPTY_DEFAULT "]}", 0},
    {"{'uid':'ffffffffffffffff','scopes':[" DEFAULT_SCOPE "]}", 1},
    {"{'uid':'FFFFFFFFFFFFFFFF','scopes':[" DEFAULT_SCOPE "]}", 1},
    {"{'uid':'aBcD','scopes':[" DEFAULT_SCOPE "]}", 1},
    {"{'uid':'0000000000000001','scopes':[" DEFAULT_SCOPE "]}", 1},
    {"{'uid':'1','scopes':[" DEFAULT_SCOPE "],'extra':{'ignored':true}}", 1},
    {"{'scopes':[" DEFAULT_SCOPE "],'uid':'2'}", 1},
    {"{'uid':'1','scopes':[{'uid':'0','collections':[],'name':'_default','x':1}]}", 0},
    {"{'uid':'1','scopes':[" EMPTY_DEFAULT ",{'name':'s','uid':'8','collections':[]}]}",
     0},
    {"{'uid':'1','scopes':[" EMPTY_DEFAULT
     ",{'name':'s','uid':'ffffffff','collections':[]}]}",
     0},
    {"{'uid':'1','scopes':[" EMPTY_DEFAULT
     ",{'name':'s','uid':'FFFFFFFF','collections':[]}]}",
     0},
    {"{'uid':'1','scopes':[" EMPTY_DEFAULT
     ",{'name':'s','uid':'00000008','collections':[]}]}",
     0},
    {"{'uid':'1','scopes':[" DEFAULT_SCOPE
     ",{'name':'s','uid':'8','collections':[{'name':'c',"
     "'uid':'8'}]}]}",
     2},
    {"{'uid':'1','scopes':[" DEFAULT_SCOPE
     ",{'name':'s','uid':'8','collections':[{'name':'_"
     "default2','uid':'9'}]}]}",
     2},
    {"{'uid':'1','scopes':[{'name':'_default','uid':'0','collections':[{'name':'c','uid':"
     "'8',"
     "'maxTTL':0}]}]}",
     1},
    {"{'uid':'1','scopes':[{'name':'_default','uid':'0','collections':[{'name':'c','uid':"
     "'8',"
     "'maxTTL':2147483647}]}]}",
     1},
    {"{'uid':'1','scopes':[{'name':'_default','uid':'0','collections':[{'name':'c','uid':"
     "'8',"
     "'maxTTL':3600}]}]}",
     1},
    {"{'uid':'1','scopes':[" EMPTY_DEFAULT
     ",{'name':'s','uid':'8','collections':[{'name':'c',"
     "'uid':'9'}]},{'name':'t','uid':'a','collections':[{'name':'c','uid':'b'}]}]}",
     2},
    {"{'uid':'1','scopes':[" EMPTY_DEFAULT
     ",{'name':'c','uid':'8','collections':[{'name':'c',"
     "'uid':'9'}]}]}",
     1},
    {"{'uid':'1','scopes':[{'name':'_default','uid':'0','collections':[{'name':'A-Z_a%z$"
     "9','uid':"
     "'8'}]}]}",
     1},
    {"{'uid':'1','scopes':[{'name':'_default','uid':'0','collections':[{'name':'0','uid':"
     "'8'}]}]}",
     1},
    {"{'uid':'1','scopes':[{'name':'_default','uid':'0','collections':[{'name':'-','uid':"
     "'8'}]}]}",
     1},
    {"{'uid':'1','scopes':[{'name':'_default','uid':'0','collections':[{'name':'%','uid':"
     "'8'}]}]}",
     1},
    {"{'uid':'1','scopes':[{'name':'_default','uid':'0','collections':[{'name':'a$','uid'"
     ":'8'}]}]}",
     1},
    {"{'uid':'1','scopes':[{'name':'_default','uid':'0','collections':[{'name':'_','uid':"
     "'8'}]}]}",
     1},
    {"{'uid':'1','scopes':[{'name':'_default','uid':'0','collections':[{'name':'c','uid':"
     "'8'},{"
     "'name':'d','uid':'9'},{'name':'e','uid':'a'}]}]}",
     3},
    {"{'uid':'1','scopes':[{'name':'_default','uid':'0','collections':[{'name':'c','uid':"
     "'8'}]},{"
     "'name':'s','uid':'9','collections':[{'name':'c','uid':'9'}]}]}",
     2},
    {"{'uid':'1','scopes':[{'name':'s','uid':'9','collections':[]}," DEFAULT_SCOPE "]}",
     1},
    {"{ 'uid' : '1' ,\n 'scopes' : [ " DEFAULT_SCOPE " ] }", 1},
};

/* What the JSON reader (jansson) must refuse in a manifest, and what it must
 * take: the rules that json.c's own tests held before. */
static engine_errc parse_len(const char *json, size_t len, const coll_limits *lim,
                             char *why, size_t whylen)
{
    coll_manifest *m = NULL;
    engine_errc rc = coll_manifest_parse(json, len, lim, &m, why, whylen);
    coll_manifest_unref(m);
    return rc;
}

START_TEST(json_reader_rules)
{
    char why[512];
    static const char *const refused[] = {
        /* a duplicate key, also in a scope and a collection */
        "{'uid':'1','scopes':[{'name':'_default','name':'_default','uid':'0',"
        "'collections':[]}]}",
        "{'uid':'1','scopes':[{'name':'_default','uid':'0','collections':[{'name':'c',"
        "'uid':'8','uid':'9'}]}]}",
        /* NUL in a string, escaped */
        "{'uid':'1','scopes':[" EMPTY_DEFAULT ",{'name':'a\\u0000b','uid':'8',"
        "'collections':[]}]}",
        /* a lone surrogate escape and a bad escape */
        "{'uid':'1','scopes':[" EMPTY_DEFAULT ",{'name':'\\ud800','uid':'8',"
        "'collections':[]}]}",
        "{'uid':'1','scopes':[" EMPTY_DEFAULT ",{'name':'\\x41','uid':'8',"
        "'collections':[]}]}",
        /* an integer too large for 64 bits, and a real, as maxTTL */
        "{'uid':'1','scopes':[{'name':'_default','uid':'0','collections':[{'name':'c',"
        "'uid':'8','maxTTL':99999999999999999999999}]}]}",
        "{'uid':'1','scopes':[{'name':'_default','uid':'0','collections':[{'name':'c',"
        "'uid':'8','maxTTL':1.5}]}]}",
        /* a control character raw in a string */
        "{'uid':'1','scopes':[" EMPTY_DEFAULT ",{'name':'a\tb','uid':'8',"
        "'collections':[]}]}",
    };
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
        why[0] = '\0';
        ck_assert_msg(parse_len(q(refused[i]), strlen(refused[i]), &limits, why,
                                sizeof(why)) == ENGINE_INVALID_ARGUMENTS,
                      "case %zu accepted: %s", i, refused[i]);
        ck_assert_msg(why[0] != '\0', "case %zu: no reason", i);
    }
    /* Raw bytes that are not UTF-8, and a raw NUL. */
    const char bad_utf8[] = "{\"uid\":\"1\",\"scopes\":[{\"name\":\"_default\",\"uid\":"
                            "\"0\",\"collections\":[]},{\"name\":\"\xff\",\"uid\":\"8\","
                            "\"collections\":[]}]}";
    ck_assert_int_eq(parse_len(bad_utf8, sizeof(bad_utf8) - 1, &limits, why, sizeof(why)),
                     ENGINE_INVALID_ARGUMENTS);
    ck_assert_msg(strstr(why, "JSON") != NULL, "%s", why);
    const char raw_nul[] = "{\"uid\":\"1\",\"scopes\":[]}\0";
    ck_assert_int_eq(parse_len(raw_nul, sizeof(raw_nul), &limits, why, sizeof(why)),
                     ENGINE_INVALID_ARGUMENTS);
    /* Unknown keys of any type and nesting are ignored, up to jansson's depth
     * limit (2048 levels); beyond it the manifest is refused with its reason. */
    enum { DEEP = 3000 };
    static char deep[2 * DEEP + 256];
    for (int depth = 100; depth <= DEEP; depth += DEEP - 100) {
        size_t n = (size_t)sprintf(deep, "{\"uid\":\"1\",\"x\":");
        for (int i = 0; i < depth; i++)
            deep[n++] = '[';
        for (int i = 0; i < depth; i++)
            deep[n++] = ']';
        n += (size_t)sprintf(deep + n, ",\"scopes\":[%s]}", q(DEFAULT_SCOPE));
        engine_errc rc = parse_len(deep, n, &limits, why, sizeof(why));
        if (depth == 100) {
            ck_assert_msg(rc == ENGINE_SUCCESS, "depth 100: %s", why);
        } else {
            ck_assert_int_eq(rc, ENGINE_INVALID_ARGUMENTS);
            ck_assert_msg(strstr(why, "depth") != NULL, "%s", why);
        }
    }
    /* The size limit is checked before parsing. */
    coll_limits tiny = {100, 1000, 32};
    const char *ok = q("{'uid':'1','scopes':[" DEFAULT_SCOPE "]}");
    ck_assert_int_eq(parse_len(ok, strlen(ok), &tiny, why, sizeof(why)),
                     ENGINE_INVALID_ARGUMENTS);
    ck_assert_msg(strstr(why, "limit") != NULL, "%s", why);
    ck_assert_int_eq(parse_len(ok, strlen(ok), &limits, why, sizeof(why)),
                     ENGINE_SUCCESS);
    /* Escapes and UTF-8 that decode to a legal name are taken. */
    const char *escaped = q("{'uid':'1','scopes':[" DEFAULT_SCOPE
                            ",{'name':'\\u0073c\\/x','uid':'8','collections':[]}]}");
    ck_assert_int_eq(parse_len(escaped, strlen(escaped), &limits, why, sizeof(why)),
                     ENGINE_INVALID_ARGUMENTS); /* '/' is not a legal name character */
    const char *legal = q("{'uid':'1','scopes':[" DEFAULT_SCOPE
                          ",{'name':'\\u0073cope','uid':'8','collections':[]}]}");
    ck_assert_int_eq(parse_len(legal, strlen(legal), &limits, why, sizeof(why)),
                     ENGINE_SUCCESS);
}
END_TEST

START_TEST(valid_manifests)
{
    size_t n = sizeof(valid_cases) / sizeof(valid_cases[0]);
    ck_assert_uint_ge(n, 30);
    for (size_t i = 0; i < n; i++) {
        coll_manifest *m = NULL;
        char why[512] = "";
        engine_errc rc = parse(q(valid_cases[i].json), &m, why, sizeof(why));
        ck_assert_msg(rc == ENGINE_SUCCESS, "case %zu (%s): %s", i, valid_cases[i].json,
                      why);
        ck_assert_uint_eq(m->ncollections, valid_cases[i].collections);
        /* Printing and parsing again gives the same manifest. */
        char *json = coll_manifest_to_json(m, false);
        coll_manifest *again = NULL;
        ck_assert_int_eq(parse(json, &again, why, sizeof(why)), ENGINE_SUCCESS);
        bool identical = false;
        ck_assert_int_eq(coll_manifest_successor(m, again, &identical, why, sizeof(why)),
                         ENGINE_SUCCESS);
        ck_assert(identical);
        free(json);
        coll_manifest_unref(again);
        coll_manifest_unref(m);
    }
}
END_TEST

static engine_errc parse_named(const char *name, size_t len)
{
    char json[2048], escaped[1024];
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)name[i];
        if (c < 0x20 || c == '"' || c == '\\' || c >= 0x80)
            o += (size_t)snprintf(escaped + o, sizeof(escaped) - o, "\\u%04x", c);
        else
            escaped[o++] = (char)c;
    }
    escaped[o] = '\0';
    snprintf(
        json, sizeof(json),
        "{\"uid\":\"1\",\"scopes\":[{\"name\":\"_default\",\"uid\":\"0\",\"collections\":"
        "[{\"name\":\"%s\",\"uid\":\"8\"}]}]}",
        escaped);
    coll_manifest *m = NULL;
    char why[512];
    engine_errc rc = parse(json, &m, why, sizeof(why));
    coll_manifest_unref(m);
    return rc;
}

START_TEST(every_single_byte_name)
{
    for (int b = 0; b < 256; b++) {
        char name[1] = {(char)b};
        bool legal = (b >= 'a' && b <= 'z') || (b >= 'A' && b <= 'Z') ||
                     (b >= '0' && b <= '9') || b == '_' || b == '-' || b == '%';
        engine_errc rc = parse_named(name, 1);
        ck_assert_msg(rc == (legal ? ENGINE_SUCCESS : ENGINE_INVALID_ARGUMENTS),
                      "byte 0x%02x: rc 0x%x", b, rc);
    }
}
END_TEST

START_TEST(name_lengths)
{
    char name[260];
    memset(name, 'n', sizeof(name));
    ck_assert_int_eq(parse_named(name, 1), ENGINE_SUCCESS);
    ck_assert_int_eq(parse_named(name, 251), ENGINE_SUCCESS);
    ck_assert_int_eq(parse_named(name, 252), ENGINE_INVALID_ARGUMENTS);
    ck_assert_int_eq(parse_named(name, 0), ENGINE_INVALID_ARGUMENTS);
}
END_TEST

START_TEST(uid_digits_and_case)
{
    coll_manifest *m = NULL;
    char why[256];
    ck_assert_int_eq(parse(q("{'uid':'123456789abcdef0','scopes':[" DEFAULT_SCOPE "]}"),
                           &m, why, sizeof(why)),
                     ENGINE_SUCCESS);
    ck_assert_uint_eq(m->uid, 0x123456789abcdef0ull);
    coll_manifest_unref(m);
    ck_assert_int_eq(parse(q("{'uid':'123456789abcdef01','scopes':[" DEFAULT_SCOPE "]}"),
                           &m, why, sizeof(why)),
                     ENGINE_INVALID_ARGUMENTS);
    ck_assert_int_eq(
        parse(q("{'uid':'AbC','scopes':[" DEFAULT_SCOPE "]}"), &m, why, sizeof(why)),
        ENGINE_SUCCESS);
    ck_assert_uint_eq(m->uid, 0xabc);
    coll_manifest_unref(m);
    for (unsigned id = 1; id <= 7; id++) {
        char json[512];
        snprintf(json, sizeof(json),
                 "{'uid':'1','scopes':[" DEFAULT_SCOPE
                 ",{'name':'s','uid':'8','collections':[{'name':'c','uid':'%x'}]}]}",
                 id);
        ck_assert_int_eq(parse(q(json), &m, why, sizeof(why)), ENGINE_INVALID_ARGUMENTS);
        ck_assert(strstr(why, "reserved") != NULL);
    }
}
END_TEST

START_TEST(limits_are_checked)
{
    coll_limits small = {2, 2, 0};
    coll_manifest *m = NULL;
    char why[256];
    const char *three =
        q("{'uid':'1','scopes':[{'name':'_default','uid':'0','collections':[{"
          "'name':'a','uid':'8'},{'name':'b','uid':'9'},{'name':'c','uid':'a'}]}"
          "]}");
    ck_assert_int_eq(
        coll_manifest_parse(three, strlen(three), &small, &m, why, sizeof(why)),
        ENGINE_INVALID_ARGUMENTS);
    ck_assert(strstr(why, "max_collections") != NULL);
}
END_TEST

static coll_manifest *must_parse(const char *json)
{
    coll_manifest *m = NULL;
    char why[512];
    ck_assert_msg(parse(q(json), &m, why, sizeof(why)) == ENGINE_SUCCESS, "%s: %s", json,
                  why);
    return m;
}

static engine_errc successor(const char *a, const char *b, bool *identical, char *why)
{
    coll_manifest *x = must_parse(a), *y = must_parse(b);
    engine_errc rc = coll_manifest_successor(x, y, identical, why, 512);
    coll_manifest_unref(x);
    coll_manifest_unref(y);
    return rc;
}

#define M(uid, rest) "{'uid':'" uid "','scopes':[" DEFAULT_SCOPE rest "]}"
#define S8(cols)     ",{'name':'s','uid':'8','collections':[" cols "]}"

START_TEST(successor_rules)
{
    bool same;
    char why[512];
    const engine_errc no = ENGINE_CANNOT_APPLY_COLLECTIONS_MANIFEST;
    /* Lower uid. */
    ck_assert_int_eq(successor(M("5", ""), M("4", ""), &same, why), no);
    ck_assert(strstr(why, "lower") != NULL);
    /* Equal uid: identical (in any order and case) or rejected. */
    ck_assert_int_eq(successor(M("5", S8("{'name':'c','uid':'9'}")),
                               M("5", S8("{'name':'c','uid':'9'}")), &same, why),
                     ENGINE_SUCCESS);
    ck_assert(same);
    ck_assert_int_eq(
        successor(
            "{'uid':'5','scopes':[{'name':'s','uid':'8','collections':[]}," DEFAULT_SCOPE
            "]}",
            "{'uid':'5','scopes':[" DEFAULT_SCOPE
            ",{'name':'s','uid':'08','collections':[]}]}",
            &same, why),
        ENGINE_SUCCESS);
    ck_assert(same);
    ck_assert_int_eq(successor(M("5", S8("")), M("5", ""), &same, why), no);
    ck_assert_int_eq(successor(M("5", S8("{'name':'c','uid':'9'}")),
                               M("5", S8("{'name':'c','uid':'9','maxTTL':1}")), &same,
                               why),
                     no);
    /* Scope rename, collection rename, collection moved. */
    ck_assert_int_eq(successor(M("5", S8("")),
                               M("6", ",{'name':'t','uid':'8','collections':[]}"), &same,
                               why),
                     no);
    ck_assert(strstr(why, "renamed") != NULL);
    ck_assert_int_eq(successor(M("5", S8("{'name':'c','uid':'9'}")),
                               M("6", S8("{'name':'d','uid':'9'}")), &same, why),
                     no);
    ck_assert(strstr(why, "renamed") != NULL);
    ck_assert_int_eq(
        successor(M("5", S8("{'name':'c','uid':'9'}")),
                  M("6", S8("") ",{'name':'t','uid':'a','collections':[{'name':'c',"
                                "'uid':'9'}]}"),
                  &same, why),
        no);
    ck_assert(strstr(why, "moves") != NULL);
    /* Allowed: maxTTL change, add, drop, drop then re-add, a new name for a new id. */
    ck_assert_int_eq(successor(M("5", S8("{'name':'c','uid':'9'}")),
                               M("6", S8("{'name':'c','uid':'9','maxTTL':30}")), &same,
                               why),
                     ENGINE_SUCCESS);
    ck_assert(!same);
    ck_assert_int_eq(
        successor(M("5", ""), M("6", S8("{'name':'c','uid':'9'}")), &same, why),
        ENGINE_SUCCESS);
    ck_assert_int_eq(
        successor(M("6", S8("{'name':'c','uid':'9'}")), M("7", S8("")), &same, why),
        ENGINE_SUCCESS);
    ck_assert_int_eq(
        successor(M("7", S8("")), M("8", S8("{'name':'c','uid':'9'}")), &same, why),
        ENGINE_SUCCESS);
    ck_assert_int_eq(successor(M("8", S8("{'name':'c','uid':'9'}")),
                               M("9", S8("{'name':'c','uid':'a'}")), &same, why),
                     ENGINE_SUCCESS); /* dropped id 9, a new collection reuses its name */
}
END_TEST

START_TEST(lookups)
{
    coll_manifest *m = must_parse(
        "{'uid':'1','scopes':[{'name':'_default','uid':'0','collections':[{'name':"
        "'dc','uid':'a'}]},{'name':'s','uid':'8','collections':[{'name':'c','uid':"
        "'9'},{'name':'_default2','uid':'b'}]}]}");
    uint32_t id = 0;
    const char *why;
    ck_assert_ptr_null(m->default_collection);
    ck_assert_ptr_null(coll_find_collection(m, 0));
    ck_assert_ptr_nonnull(coll_find_collection(m, 9));
    ck_assert_ptr_null(coll_find_collection(m, 8));
    ck_assert_int_eq(coll_resolve_collection(m, ".dc", 3, &id, &why), ENGINE_SUCCESS);
    ck_assert_uint_eq(id, 0xa);
    ck_assert_int_eq(coll_resolve_collection(m, "s.c", 3, &id, &why), ENGINE_SUCCESS);
    ck_assert_uint_eq(id, 9);
    ck_assert_int_eq(coll_resolve_collection(m, ".", 1, &id, &why),
                     ENGINE_UNKNOWN_COLLECTION);
    ck_assert_int_eq(coll_resolve_collection(m, "x.c", 3, &id, &why),
                     ENGINE_UNKNOWN_SCOPE);
    ck_assert_int_eq(coll_resolve_collection(m, "s", 1, &id, &why),
                     ENGINE_INVALID_ARGUMENTS);
    ck_assert_int_eq(coll_resolve_collection(m, "s.c.d", 5, &id, &why),
                     ENGINE_INVALID_ARGUMENTS);
    ck_assert_int_eq(coll_resolve_scope(m, "s.anything", 10, &id, &why), ENGINE_SUCCESS);
    ck_assert_uint_eq(id, 8);
    ck_assert_int_eq(coll_resolve_scope(m, "", 0, &id, &why), ENGINE_SUCCESS);
    ck_assert_uint_eq(id, 0);
    ck_assert_int_eq(coll_resolve_scope(m, "a.b.c", 5, &id, &why),
                     ENGINE_INVALID_ARGUMENTS);
    coll_manifest_unref(m);
}
END_TEST

START_TEST(large_manifest)
{
    /* 10,000 collections in 100 scopes: every id and path resolves. */
    json_t *scopes =
        json_pack("[{s:s,s:s,s:[]}]", "name", "_default", "uid", "0", "collections");
    for (int s = 0; s < 100; s++) {
        char name[16], uid[16];
        snprintf(name, sizeof(name), "s%d", s);
        snprintf(uid, sizeof(uid), "%x", 8 + s);
        json_t *cols = json_array();
        for (int c = 0; c < 100; c++) {
            char cname[16], cuid[16];
            snprintf(cname, sizeof(cname), "c%d", c);
            snprintf(cuid, sizeof(cuid), "%x", 8 + s * 100 + c);
            json_array_append_new(cols,
                                  json_pack("{s:s,s:s}", "name", cname, "uid", cuid));
        }
        json_array_append_new(scopes, json_pack("{s:s,s:s,s:o}", "name", name, "uid", uid,
                                                "collections", cols));
    }
    json_t *root = json_pack("{s:s,s:o}", "uid", "1", "scopes", scopes);
    char *json = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    ck_assert_ptr_nonnull(json);
    coll_limits big = {1000, 100000, 0};
    coll_manifest *m = NULL;
    char why[256];
    ck_assert_int_eq(coll_manifest_parse(json, strlen(json), &big, &m, why, sizeof(why)),
                     ENGINE_SUCCESS);
    ck_assert_uint_eq(m->ncollections, 10000);
    for (int s = 0; s < 100; s++) {
        for (int c = 0; c < 100; c++) {
            char path[32];
            uint32_t id = 0;
            const char *w;
            int len = snprintf(path, sizeof(path), "s%d.c%d", s, c);
            ck_assert_int_eq(coll_resolve_collection(m, path, (size_t)len, &id, &w),
                             ENGINE_SUCCESS);
            ck_assert_uint_eq(id, (uint32_t)(8 + s * 100 + c));
            ck_assert_ptr_nonnull(coll_find_collection(m, id));
        }
    }
    coll_manifest_unref(m);
    free(json);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("manifest");
    TCase *tc = tcase_create("parse");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, invalid_manifests);
    tcase_add_test(tc, valid_manifests);
    tcase_add_test(tc, json_reader_rules);
    tcase_add_test(tc, every_single_byte_name);
    tcase_add_test(tc, name_lengths);
    tcase_add_test(tc, uid_digits_and_case);
    tcase_add_test(tc, limits_are_checked);
    tcase_add_test(tc, successor_rules);
    tcase_add_test(tc, lookups);
    tcase_add_test(tc, large_manifest);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
