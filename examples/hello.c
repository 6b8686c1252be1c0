/* hello.c - loads ep_engine.so with dlopen, stores an item and reads it back.
 *   cc -I. examples/hello.c -ldl -o hello && ./hello build-run/ep_engine.so */
#include "engine_api.h"
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* The server API every host gives the engine (engine_api.h documents each
 * member), one line each; this host has no connections, so its cookie calls
 * do nothing. */
// clang-format off
static engine_rel_time now(void) { return 1; }
static engine_rel_time rel(uint32_t exptime) { return exptime; }
static time_t abs_time(engine_rel_time t) { return (time_t)t; }
static void say(engine_log_level l, const char *fmt, ...) { (void)l, (void)fmt; }
static void keep(const void *c, void *d) { (void)c, (void)d; }
static void *kept(const void *c) { return (void)c, NULL; }
static void notify(const void *c, engine_errc s) { (void)c, (void)s; }
static engine_errc hold(const void *c) { return (void)c, ENGINE_SUCCESS; }
static void drop(const void *c) { (void)c; }
static void reason(const void *c, const char *r) { (void)c, (void)r; }
static void uid(const void *c, uint64_t u) { (void)c, (void)u; }
static const engine_server_api api = {ENGINE_SERVER_API_VERSION, {now, rel, abs_time}, say,
                                      {keep, kept, notify, hold, drop, reason, uid}};
static const engine_server_api *server(void) { return &api; }
// clang-format on

int main(int argc, char **argv)
{
    void *so = dlopen(argc > 1 ? argv[1] : "./ep_engine.so", RTLD_NOW);
    engine_create_instance_fn create = NULL;
    if (so != NULL)
        *(void **)&create = dlsym(so, "create_instance");
    engine_handle *h = NULL;
    if (create == NULL || create(ENGINE_API_VERSION, server, &h) != ENGINE_SUCCESS ||
        h->initialize(h, "max_size=67108864") != ENGINE_SUCCESS)
        return fprintf(stderr, "cannot load or start the engine\n"), 1;
    engine_doc_key key = {0, 5, "hello"}; /* collection 0 (_default), the key */
    engine_item *it;
    engine_item_info info;
    if (h->allocate(h, NULL, &it, &key, 5, 0, 0, 0, 0) != ENGINE_SUCCESS)
        return 1;
    h->get_item_info(h, it, &info);
    memcpy(info.value.iov_base, "world", 5);
    engine_errc stored = h->store(h, NULL, it, NULL, ENGINE_STORE_SET);
    h->release(h, it);
    if (stored != ENGINE_SUCCESS || h->get(h, NULL, &it, &key, 0) != ENGINE_SUCCESS)
        return 1;
    h->get_item_info(h, it, &info);
    printf("hello = %.*s\n", (int)info.value.iov_len, (const char *)info.value.iov_base);
    h->release(h, it);
    h->destroy(h, false);
    return 0;
}
