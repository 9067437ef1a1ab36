// A per-thread cache of malloc blocks for the libraries that allocate and free the same blocks
// on every request: nghttp2 (a stream's objects and header buffers, through page_memory.c) and
// OpenSSL (a record's WPACKET state, four per request; the read and write buffers, which
// SSL_MODE_RELEASE_BUFFERS frees whenever they are empty, so once per request and side). glibc's
// malloc and free cost ~200 instructions a pair for small blocks (its own per-thread cache is 7
// deep and sits behind its checks) and ~500 for the 17-65 KiB record buffers (bin search,
// consolidation); a block taken from here costs ~15. Blocks stay glibc's: any thread may free
// one, realloc is glibc's, and a cache can be emptied with free() at any time
// (gw_block_cache_release: the idle sweep and the release after a surge). Bounded per thread.
#include "CGatewayShims.h"
#include <malloc.h>
#include <openssl/crypto.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

// Small blocks: lists by glibc's chunk size.
#define GW_SMALL_CLASSES (GW_BLOCK_SMALL_MAX / 16 + 2)
#define GW_SMALL_CACHE_BYTES (512 * 1024)
// Large blocks: a few, any size, oldest first, each taken only for a request it does not exceed
// by a quarter; when full, the oldest goes back to free.
#define GW_LARGE_SLOTS 8
#define GW_LARGE_CACHE_BYTES (1024 * 1024)

typedef struct {
    void *head[GW_SMALL_CLASSES];
    size_t bytes;
    void *large[GW_LARGE_SLOTS];
    size_t large_usable[GW_LARGE_SLOTS];
    size_t large_count, large_bytes;
} gw_block_cache;
static __thread gw_block_cache gw_cache;

// glibc's usable size for a request of n bytes (x86-64: 16-byte chunks with an 8-byte header,
// 32 at least); a free block's usable size is malloc_usable_size, so both key the same list.
static size_t gw_usable_for(size_t n) { size_t c = (n + 8 + 15) & ~(size_t)15; return (c < 32 ? 32 : c) - 8; }

void *gw_block_malloc(size_t size) {
    gw_block_cache *c = &gw_cache;
    if (size <= GW_BLOCK_SMALL_MAX) {
        size_t u = gw_usable_for(size);
        void **head = &c->head[(u + 8) / 16];
        void *p = *head;
        if (p) {
            *head = *(void **)p;
            c->bytes -= u;
            return p;
        }
        return malloc(size);
    }
    for (size_t i = c->large_count; i-- > 0;) {
        size_t u = c->large_usable[i];
        if (u >= size && u - size <= size / 4) {
            void *p = c->large[i];
            c->large_count--;
            memmove(&c->large[i], &c->large[i + 1], (c->large_count - i) * sizeof c->large[0]);
            memmove(&c->large_usable[i], &c->large_usable[i + 1], (c->large_count - i) * sizeof c->large_usable[0]);
            c->large_bytes -= u;
            return p;
        }
    }
    return malloc(size);
}

void gw_block_free(void *p) {
    if (!p) return;
    gw_block_cache *c = &gw_cache;
    size_t u = malloc_usable_size(p);
    // A block must hold the list's link: glibc's always do (24 bytes at least), but under
    // another allocator (AddressSanitizer's, in the fuzz builds) a 4-byte request is 4 bytes.
    if (u >= sizeof(void *) && u <= GW_BLOCK_SMALL_MAX) {
        if (c->bytes + u <= GW_SMALL_CACHE_BYTES) {
            void **head = &c->head[(u + 8) / 16];
            *(void **)p = *head;
            *head = p;
            c->bytes += u;
            return;
        }
    } else if (u > GW_BLOCK_SMALL_MAX && u <= GW_LARGE_CACHE_BYTES) {
        // Full: the oldest blocks make room (a block kept from another load, a handshake's, must
        // not keep the record buffers of this one out for good).
        while (c->large_count == GW_LARGE_SLOTS || c->large_bytes + u > GW_LARGE_CACHE_BYTES) {
            free(c->large[0]);
            c->large_bytes -= c->large_usable[0];
            c->large_count--;
            memmove(&c->large[0], &c->large[1], c->large_count * sizeof c->large[0]);
            memmove(&c->large_usable[0], &c->large_usable[1], c->large_count * sizeof c->large_usable[0]);
        }
        c->large[c->large_count] = p;
        c->large_usable[c->large_count] = u;
        c->large_count++;
        c->large_bytes += u;
        return;
    }
    free(p);
}

size_t gw_block_cache_release(void) {
    gw_block_cache *c = &gw_cache;
    size_t released = c->bytes + c->large_bytes;
    for (size_t k = 0; k < GW_SMALL_CLASSES; k++) {
        void *p = c->head[k];
        while (p) { void *next = *(void **)p; free(p); p = next; }
        c->head[k] = NULL;
    }
    for (size_t i = 0; i < c->large_count; i++) free(c->large[i]);
    c->large_count = 0;
    c->bytes = c->large_bytes = 0;
    return released;
}

// OpenSSL's allocation functions (CRYPTO_set_mem_functions' signatures).
static void *gw_ossl_malloc_hook(size_t n, const char *file, int line) { (void)file; (void)line; return gw_block_malloc(n); }
static void gw_ossl_free_hook(void *p, const char *file, int line) { (void)file; (void)line; gw_block_free(p); }
static void *gw_ossl_realloc_hook(void *p, size_t n, const char *file, int line) {
    (void)file; (void)line;
    if (!p) return gw_block_malloc(n);
    if (n == 0) { gw_block_free(p); return NULL; }
    return realloc(p, n);
}

#if defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define GW_SANITIZED 1
#endif
#endif

int gw_openssl_use_block_cache(void) {
#ifdef GW_SANITIZED
    return 0;   // the sanitizer's allocator sees every OpenSSL block (use after free, leaks)
#else
    // GATEWAY_OPENSSL_BLOCK_CACHE=off: a tool that follows every block (scripts/idlemem) sees
    // OpenSSL's as they are, not held in the cache between two snapshots.
    const char *off = getenv("GATEWAY_OPENSSL_BLOCK_CACHE");
    if (off && strcmp(off, "off") == 0) return 0;
    return CRYPTO_set_mem_functions(gw_ossl_malloc_hook, gw_ossl_realloc_hook, gw_ossl_free_hook);
#endif
}
