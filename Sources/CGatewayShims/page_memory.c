// Memory for one nghttp2 session, whose large blocks are mostly never written (its 16 KiB frame
// buffer, its 4 KiB stream table): blocks of a page or more come straight from the kernel, page
// aligned and with no header, so only the pages actually written count in RSS, and go back to it
// when freed. Smaller blocks use malloc. The arena (nghttp2_mem's user data, one per session)
// lists its page blocks, so free and realloc know which kind a pointer is, and an idle session
// can give its written pages back (gw_page_arena_trim). The signatures are those of nghttp2_mem's
// functions. One thread at a time (a session's); small blocks go through a per-thread cache.
#include "CGatewayShims.h"
#include <malloc.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define GW_PAGE 4096
// nghttp2's frame buffer chunk (NGHTTP2_FRAMEBUF_CHUNKLEN: frame header, pad length, 16 KiB
// payload). nghttp2 1.52 allocates blocks of this size only for aob.framebufs, whose bytes
// matter only from a frame's serialization until mem_send returns it: at rest they are stale.
#define GW_NGHTTP2_FRAMEBUF_CHUNKLEN (9 + 1 + 16384)

typedef struct {
    void *p;
    size_t size;
    int scratch;   // a frame buffer chunk: its contents are worthless while the session is idle
} gw_page_block;

struct gw_page_arena {
    size_t count, cap;
    gw_page_block *blocks;
    size_t unwritten;   // the next block of exactly this size gets pages of its own (then 0)
    void *unwritten_block;   // the block it got
};

static size_t gw_round(size_t n) { return (n + GW_PAGE - 1) & ~(size_t)(GW_PAGE - 1); }

// Blocks under a page: the calling thread's block cache (block_cache.c), nghttp2's small blocks
// being freed and asked for again all the time (a stream's objects and header buffers: 11 per
// request proxied h2 -> h2).

gw_page_arena *gw_page_arena_new(void) { return calloc(1, sizeof(gw_page_arena)); }

void gw_page_arena_free(gw_page_arena *a) {
    if (!a) return;
    for (size_t i = 0; i < a->count; i++) munmap(a->blocks[i].p, gw_round(a->blocks[i].size));
    free(a->blocks);
    free(a);
}

// The page block at p, or -1 (a malloc block). Only page-aligned pointers can be ours.
static long gw_find(gw_page_arena *a, void *p) {
    if (!a || ((uintptr_t)p & (GW_PAGE - 1))) return -1;
    for (size_t i = 0; i < a->count; i++) if (a->blocks[i].p == p) return (long)i;
    return -1;
}

static void *gw_map(gw_page_arena *a, size_t size) {
    if (a->count == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 4;
        gw_page_block *b = realloc(a->blocks, cap * sizeof *b);
        if (!b) return NULL;
        a->blocks = b;
        a->cap = cap;
    }
    void *p = mmap(NULL, gw_round(size), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return NULL;
    a->blocks[a->count++] = (gw_page_block){ p, size, size == GW_NGHTTP2_FRAMEBUF_CHUNKLEN };
    return p;
}

static void gw_unmap(gw_page_arena *a, long i) {
    if (a->blocks[i].p == a->unwritten_block) a->unwritten_block = NULL;
    munmap(a->blocks[i].p, gw_round(a->blocks[i].size));
    a->blocks[i] = a->blocks[--a->count];
}

void gw_page_arena_expect_unwritten(gw_page_arena *a, size_t size) { if (a) a->unwritten = size; }
void *gw_page_arena_unwritten_block(gw_page_arena *a) { return a ? a->unwritten_block : NULL; }

void *gw_page_malloc(size_t size, void *user) {
    gw_page_arena *a = user;
    if (a && a->unwritten && size == a->unwritten) {
        // A block the owner knows is never written: from pages, which stay out of RSS.
        a->unwritten = 0;
        return a->unwritten_block = gw_map(a, size);
    }
    return size >= GW_PAGE && a ? gw_map(a, size) : gw_block_malloc(size);
}

void gw_page_free(void *p, void *user) {
    if (!p) return;
    long i = gw_find(user, p);
    if (i >= 0) gw_unmap(user, i); else gw_block_free(p);
}

void *gw_page_calloc(size_t n, size_t size, void *user) {
    if (size && n > (size_t)-1 / size) return NULL;
    size_t total = n * size;
    // Fresh kernel pages are zero already: writing zeros would make them resident.
    if (total >= GW_PAGE && user) return gw_map(user, total);
    if (total > GW_BLOCK_SMALL_MAX) return calloc(n, size);
    void *p = gw_block_malloc(total);
    if (p) memset(p, 0, total);
    return p;
}

void *gw_page_realloc(void *p, size_t size, void *user) {
    gw_page_arena *a = user;
    if (!p) return gw_page_malloc(size, user);
    long i = gw_find(a, p);
    if (i < 0 && (size < GW_PAGE || !a)) return realloc(p, size);
    if (i >= 0 && size >= GW_PAGE && gw_round(size) == gw_round(a->blocks[i].size)) {
        a->blocks[i].size = size;
        a->blocks[i].scratch = size == GW_NGHTTP2_FRAMEBUF_CHUNKLEN;
        return p;
    }
    size_t old = i >= 0 ? a->blocks[i].size : malloc_usable_size(p);
    void *q = gw_page_malloc(size, user);
    if (!q) return NULL;
    memcpy(q, p, old < size ? old : size);
    gw_page_free(p, user);
    return q;
}

static int gw_page_is_zero(const unsigned char *p) {
    static const unsigned char zero[256];
    for (size_t off = 0; off < GW_PAGE; off += sizeof zero) if (memcmp(p + off, zero, sizeof zero)) return 0;
    return 1;
}

size_t gw_page_arena_trim(gw_page_arena *a) {
    if (!a) return 0;
    size_t released = 0;
    for (size_t i = 0; i < a->count; i++) {
        unsigned char *p = a->blocks[i].p;
        size_t pages = gw_round(a->blocks[i].size) / GW_PAGE;
        unsigned char resident[8];
        for (size_t k = 0; k < pages; k++) {
            // Not written (or given back already): nothing to give back, and reading it would map a page.
            if (mincore(p + k * GW_PAGE, GW_PAGE, resident) != 0 || !(resident[0] & 1)) continue;
            // A page that reads as zeros reads the same after MADV_DONTNEED (the stream table of
            // a session with no stream); a frame buffer's bytes are stale once nothing is queued.
            if (!a->blocks[i].scratch && !gw_page_is_zero(p + k * GW_PAGE)) continue;
            if (madvise(p + k * GW_PAGE, GW_PAGE, MADV_DONTNEED) == 0) released += GW_PAGE;
        }
    }
    return released;
}
