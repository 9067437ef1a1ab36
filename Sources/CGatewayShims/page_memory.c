// Memory for long-lived per-connection tables whose large blocks are mostly never written
// (nghttp2's 16 KiB frame buffer, its 4 KiB tables): blocks of a page or more come straight from
// the kernel, so only the pages actually written count in RSS, and go back to it when freed.
// Smaller blocks use malloc. Every block carries a 16-byte header (its size), so free and
// realloc know which kind it is. The signatures are those of nghttp2_mem's functions.
#include "CGatewayShims.h"
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define GW_PAGE_THRESHOLD 4096
#define GW_HEADER 16

static void *gw_header_to_user(void *h, size_t size) {
    *(size_t *)h = size;
    return (char *)h + GW_HEADER;
}

void *gw_page_malloc(size_t size, void *user) {
    (void)user;
    if (size + GW_HEADER < GW_PAGE_THRESHOLD) {
        void *h = malloc(size + GW_HEADER);
        return h ? gw_header_to_user(h, size) : NULL;
    }
    void *h = mmap(NULL, size + GW_HEADER, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return h == MAP_FAILED ? NULL : gw_header_to_user(h, size);
}

void gw_page_free(void *p, void *user) {
    (void)user;
    if (!p) return;
    void *h = (char *)p - GW_HEADER;
    size_t size = *(size_t *)h;
    if (size + GW_HEADER < GW_PAGE_THRESHOLD) free(h); else munmap(h, size + GW_HEADER);
}

void *gw_page_calloc(size_t n, size_t size, void *user) {
    if (size && n > (size_t)-1 / size) return NULL;
    size_t total = n * size;
    void *p = gw_page_malloc(total, user);
    // Fresh kernel pages are zero already: writing zeros would make them resident.
    if (p && total + GW_HEADER < GW_PAGE_THRESHOLD) memset(p, 0, total);
    return p;
}

void *gw_page_realloc(void *p, size_t size, void *user) {
    if (!p) return gw_page_malloc(size, user);
    size_t old = *(size_t *)((char *)p - GW_HEADER);
    if (old + GW_HEADER < GW_PAGE_THRESHOLD && size + GW_HEADER < GW_PAGE_THRESHOLD) {
        void *h = realloc((char *)p - GW_HEADER, size + GW_HEADER);
        return h ? gw_header_to_user(h, size) : NULL;
    }
    void *q = gw_page_malloc(size, user);
    if (!q) return NULL;
    memcpy(q, p, old < size ? old : size);
    gw_page_free(p, user);
    return q;
}
