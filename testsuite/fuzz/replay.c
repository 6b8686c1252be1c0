/*
 * replay.c - runs the manifest fuzz target (fuzz_manifest.c) over every file
 * of a corpus directory, so the fuzzer's inputs keep guarding the parser in
 * every build: a crash, a leak (ASan) or an abort of the target fails it.
 *
 *   fuzz_replay CORPUS_DIR
 *
 * Reports in TAP, one line per corpus file (a crash stops the run, and meson
 * counts it failed).
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Reads a whole file (at most 1 MiB, the fuzzer's inputs are small). */
static uint8_t *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    uint8_t *buf = malloc(1 << 20);
    *len = buf ? fread(buf, 1, 1 << 20, f) : 0;
    fclose(f);
    return buf;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: fuzz_replay CORPUS_DIR\n");
        return 2;
    }
    DIR *d = opendir(argv[1]);
    if (d == NULL) {
        perror(argv[1]);
        return 2;
    }
    int passed = 0, failed = 0;
    struct dirent *ent;
    while ((ent = readdir(d)) != NULL) {
        if (ent->d_name[0] == '.')
            continue;
        char path[4096];
        snprintf(path, sizeof(path), "%s/%s", argv[1], ent->d_name);
        size_t len;
        uint8_t *data = read_all(path, &len);
        if (data == NULL) {
            failed++;
            printf("not ok %d - %s: cannot read\n", passed + failed, ent->d_name);
            continue;
        }
        fflush(stdout);
        LLVMFuzzerTestOneInput(data, len); /* aborts on a broken property */
        free(data);
        passed++;
        printf("ok %d - %s\n", passed + failed, ent->d_name);
    }
    closedir(d);
    printf("1..%d\n# %d passed, %d failed\n", passed + failed, passed, failed);
    return failed == 0 && passed > 0 ? 0 : 1;
}
