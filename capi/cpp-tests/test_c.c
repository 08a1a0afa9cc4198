/* A small C test of the C ABI: the calling conventions, both kinds of get buffer,
 * and bad input (null pointers, invalid UTF-8, closed handles, freed buffers).
 * Usage: test_c DIR (an empty, writable directory). */
#include "sciqlop_cache.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int passed = 0, failed = 0;

#define CHECK(cond)                                                                \
    do {                                                                           \
        if (cond) {                                                                \
            ++passed;                                                              \
        } else {                                                                   \
            ++failed;                                                              \
            fprintf(stderr, "%s:%d: CHECK(%s) failed (last error: %s)\n", __FILE__, \
                    __LINE__, #cond, sqc_last_error());                            \
        }                                                                          \
    } while (0)

#define NUL SQC_NUL_TERMINATED

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s DIR\n", argv[0]);
        return 2;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/cache", argv[1]);

    CHECK(sqc_abi_version() == SQC_ABI_VERSION);
    CHECK(strcmp(sqc_status_name(SQC_STATUS_KEY_TOO_LONG), "key too long") == 0);
    CHECK(strcmp(sqc_status_name(12345), "unknown status") == 0);
    CHECK(sqc_last_error() != NULL);

    sqc_options opts = sqc_options_default();
    opts.max_size = 1 << 20;
    sqc_store store = {0};
    CHECK(sqc_open(SQC_KIND_CACHE, path, NUL, &opts, &store) == SQC_STATUS_OK);
    CHECK(store.id != 0);
    CHECK(sqc_open(42, path, NUL, &opts, &store) == SQC_STATUS_INVALID_ARGUMENT);

    /* set with options, get into a caller buffer (too small first). */
    sqc_set_options so = {60 * 1000 * 1000, "tag", NUL};
    CHECK(sqc_set(store, "key", NUL, (const uint8_t *)"hello world", 11, &so) == SQC_STATUS_OK);
    uint8_t small[4];
    size_t len = 0;
    bool found = false;
    CHECK(sqc_get(store, "key", NUL, small, sizeof small, &len, &found) == SQC_STATUS_BUFFER_TOO_SMALL);
    CHECK(found && len == 11);
    CHECK(strstr(sqc_last_error(), "11 bytes") != NULL);
    uint8_t *big = malloc(len);
    CHECK(sqc_get(store, "key", 3, big, len, &len, &found) == SQC_STATUS_OK);
    CHECK(found && len == 11 && memcmp(big, "hello world", 11) == 0);
    free(big);
    CHECK(sqc_get(store, "missing", NUL, NULL, 0, &len, &found) == SQC_STATUS_OK);
    CHECK(!found && len == 0);

    /* Library-owned buffer, freed twice safely through the same struct. */
    sqc_buf buf;
    CHECK(sqc_get_alloc(store, "key", NUL, &buf, &found) == SQC_STATUS_OK);
    CHECK(found && buf.len == 11 && memcmp(buf.data, "hello world", 11) == 0);
    sqc_buf_free(&buf);
    CHECK(buf.data == NULL && buf.len == 0);
    sqc_buf_free(&buf);
    sqc_buf_free(NULL);

    /* Counters, readable as ASCII decimal. */
    int64_t n = 0;
    CHECK(sqc_incr(store, "n", NUL, 5, 10, &n) == SQC_STATUS_OK && n == 15);
    CHECK(sqc_decr(store, "n", NUL, 1, 0, NULL) == SQC_STATUS_OK);
    CHECK(sqc_get_counter(store, "n", NUL, &n, &found) == SQC_STATUS_OK && found && n == 14);
    CHECK(sqc_incr(store, "key", NUL, 1, 0, &n) == SQC_STATUS_NOT_A_COUNTER);

    /* Transactions, locks, cursors. */
    sqc_tx tx;
    CHECK(sqc_tx_begin(store, NULL, 0, &tx) == SQC_STATUS_OK);
    CHECK(sqc_set(store, "in-tx", NUL, NULL, 0, NULL) == SQC_STATUS_OK);
    CHECK(sqc_tx_rollback(tx) == SQC_STATUS_OK);
    CHECK(sqc_tx_rollback(tx) == SQC_STATUS_INVALID_HANDLE);
    CHECK(sqc_contains(store, "in-tx", NUL, &found) == SQC_STATUS_OK && !found);
    sqc_lock lk;
    bool acquired = false;
    CHECK(sqc_lock_try(store, "res", NUL, 1000000, &lk, &acquired) == SQC_STATUS_OK && acquired);
    sqc_lock lk2;
    CHECK(sqc_lock_try(store, "res", NUL, 1000000, &lk2, &acquired) == SQC_STATUS_OK && !acquired);
    CHECK(lk2.id == 0);
    CHECK(sqc_lock_release(lk) == SQC_STATUS_OK);
    CHECK(sqc_lock_release(lk) == SQC_STATUS_INVALID_HANDLE);
    sqc_cursor cur;
    CHECK(sqc_cursor_open(store, NULL, 0, &cur) == SQC_STATUS_OK);
    char key[8];
    bool has = false;
    int keys = 0;
    while (sqc_cursor_next(cur, (uint8_t *)key, sizeof key, &len, &has) == SQC_STATUS_OK && has) ++keys;
    CHECK(keys == 2); /* "key", "n" */
    CHECK(sqc_cursor_close(cur) == SQC_STATUS_OK);
    CHECK(sqc_cursor_next(cur, (uint8_t *)key, sizeof key, &len, &has) == SQC_STATUS_INVALID_HANDLE);

    uint64_t count = 0;
    CHECK(sqc_len(store, &count) == SQC_STATUS_OK && count == 2);
    uint64_t removed = 0;
    CHECK(sqc_evict_tag(store, "tag", NUL, &removed) == SQC_STATUS_OK && removed == 1);
    sqc_check_report report;
    CHECK(sqc_check(store, true, &report) == SQC_STATUS_OK && report.ok);

    /* Bad input: error codes, never a crash. */
    CHECK(sqc_set(store, NULL, 3, NULL, 0, NULL) == SQC_STATUS_NULL_POINTER);
    CHECK(sqc_set(store, NULL, NUL, NULL, 0, NULL) == SQC_STATUS_NULL_POINTER);
    CHECK(sqc_set(store, "k", NUL, NULL, 5, NULL) == SQC_STATUS_NULL_POINTER);
    CHECK(sqc_get(store, "key", NUL, NULL, 10, &len, &found) == SQC_STATUS_NULL_POINTER);
    CHECK(sqc_get(store, "key", NUL, small, 4, NULL, &found) == SQC_STATUS_NULL_POINTER);
    CHECK(sqc_len(store, NULL) == SQC_STATUS_NULL_POINTER);
    CHECK(sqc_pop(store, "n", NUL, NULL, &found) == SQC_STATUS_NULL_POINTER);
    CHECK(sqc_contains(store, "n", NUL, &found) == SQC_STATUS_OK && found); /* pop did nothing */
    CHECK(sqc_get_with(store, "n", NUL, NULL, NULL, &found) == SQC_STATUS_NULL_POINTER);
    CHECK(sqc_open(SQC_KIND_CACHE, NULL, NUL, NULL, &store) == SQC_STATUS_NULL_POINTER);
    CHECK(sqc_open(SQC_KIND_CACHE, path, NUL, NULL, NULL) == SQC_STATUS_NULL_POINTER);
    CHECK(sqc_set(store, "\xc3\x28", NUL, NULL, 0, NULL) == SQC_STATUS_INVALID_UTF8);
    CHECK(strstr(sqc_last_error(), "UTF-8") != NULL);
    CHECK(sqc_set(store, "k", (size_t)-2, NULL, 0, NULL) == SQC_STATUS_INVALID_ARGUMENT);

    /* A namespace: its own handle and key space. */
    sqc_store ns = {0};
    uint64_t in_ns = 99, in_default = 0;
    CHECK(sqc_namespace(store, "ns", NUL, &ns) == SQC_STATUS_OK);
    CHECK(ns.id != 0 && ns.id != store.id);
    CHECK(sqc_set(ns, "only-here", NUL, (const uint8_t *)"x", 1, NULL) == SQC_STATUS_OK);
    CHECK(sqc_len(ns, &in_ns) == SQC_STATUS_OK && in_ns == 1);
    CHECK(sqc_contains(store, "only-here", NUL, &found) == SQC_STATUS_OK && !found);
    CHECK(sqc_len(store, &in_default) == SQC_STATUS_OK && in_default > 0);
    CHECK(sqc_namespace(store, NULL, NUL, &ns) == SQC_STATUS_NULL_POINTER);
    CHECK(sqc_namespace(store, "\xc3\x28", NUL, &ns) == SQC_STATUS_INVALID_UTF8);
    CHECK(sqc_close(ns) == SQC_STATUS_OK);

    /* A directory holding a file that is not a database. */
    char bad[4200];
    snprintf(bad, sizeof bad, "%s/notacache", argv[1]);
    sqc_store other;
    CHECK(sqc_open(SQC_KIND_INDEX, bad, NUL, NULL, &other) == SQC_STATUS_OK); /* new: created */
    CHECK(sqc_close(other) == SQC_STATUS_OK);
    CHECK(sqc_open(SQC_KIND_CACHE, bad, NUL, NULL, &other) == SQC_STATUS_WRONG_KIND);

    /* Closed handles. */
    CHECK(sqc_close(store) == SQC_STATUS_OK);
    CHECK(sqc_close(store) == SQC_STATUS_INVALID_HANDLE);
    CHECK(sqc_set(store, "k", NUL, NULL, 0, NULL) == SQC_STATUS_INVALID_HANDLE);
    CHECK(strstr(sqc_last_error(), "not open") != NULL);
    sqc_store zero = {0};
    CHECK(sqc_len(zero, &count) == SQC_STATUS_INVALID_HANDLE);

    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
