/*
 * fuzz_manifest.c - libFuzzer target for the collections manifest parser.
 *
 * For any input: parsing must not crash, leak or read out of bounds; a
 * rejection must come with a reason; an accepted manifest must print to JSON
 * that parses again into an identical manifest, and be judged against the epoch
 * manifest without crashing. Run with scripts/fuzz-manifest.
 */
#include "ep_engine/collections/manifest.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const coll_limits limits = {64, 256, 0};
    coll_manifest *m = NULL;
    char why[512] = "";
    engine_errc rc =
        coll_manifest_parse((const char *)data, size, &limits, &m, why, sizeof(why));
    if (rc != ENGINE_SUCCESS) {
        if (why[0] == '\0')
            abort(); /* every rejection names its reason */
        return 0;
    }
    char *json = coll_manifest_to_json(m, false);
    if (json == NULL)
        abort();
    coll_manifest *again = NULL;
    bool identical = false;
    if (coll_manifest_parse(json, strlen(json), &limits, &again, why, sizeof(why)) !=
            ENGINE_SUCCESS ||
        coll_manifest_successor(m, again, &identical, why, sizeof(why)) !=
            ENGINE_SUCCESS ||
        !identical)
        abort(); /* printing must round-trip */
    coll_manifest *epoch = coll_manifest_epoch();
    coll_manifest_successor(epoch, m, &identical, why, sizeof(why));
    for (size_t i = 0; i < m->ncollections; i++)
        if (coll_find_collection(m, m->collections[i].id) != &m->collections[i])
            abort();
    uint32_t id;
    const char *w;
    coll_resolve_collection(m, (const char *)data, size < 64 ? size : 64, &id, &w);
    coll_resolve_scope(m, (const char *)data, size < 64 ? size : 64, &id, &w);
    coll_manifest_unref(epoch);
    coll_manifest_unref(again);
    coll_manifest_unref(m);
    free(json);
    return 0;
}
