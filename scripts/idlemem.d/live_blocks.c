// LD_PRELOAD shim for scripts/idlemem: remembers every live malloc block with its size and the
// return addresses of its allocation (glibc's backtrace), and writes them all out when the file
// $LIVE_BLOCKS_DIR/trigger appears (polled every 0.2 s by a thread of its own), to
// $LIVE_BLOCKS_DIR/blocks-PID.txt: one line per block, "SIZE OBJECT+OFFSET ...", then removes
// the trigger. Slow (a global lock and a backtrace per allocation): for counting what idle
// connections hold, never for timing.
#define _GNU_SOURCE
#include <dlfcn.h>
#include <execinfo.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define CAP (1u << 22)    // table slots: far more than the blocks of a few thousand connections
#define FRAMES 7
#define TOMBSTONE ((void *)1)
typedef struct { void *p; size_t size; void *frames[FRAMES]; } entry;

static entry *table;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static void *(*real_malloc)(size_t), *(*real_calloc)(size_t, size_t), *(*real_realloc)(void *, size_t);
static void *(*real_aligned_alloc)(size_t, size_t);
static int (*real_posix_memalign)(void **, size_t, size_t);
static void (*real_free)(void *);
static int ready, starting;
static __thread int inside;   // backtrace() and the dump allocate: those are not recorded
// dlsym allocates before the real functions are known: from here, never freed.
static char early[1 << 16];
static size_t early_used;

static void start_up(void) {
    if (ready || starting) return;
    starting = 1;
    real_malloc = dlsym(RTLD_NEXT, "malloc");
    real_calloc = dlsym(RTLD_NEXT, "calloc");
    real_realloc = dlsym(RTLD_NEXT, "realloc");
    real_free = dlsym(RTLD_NEXT, "free");
    real_aligned_alloc = dlsym(RTLD_NEXT, "aligned_alloc");
    real_posix_memalign = dlsym(RTLD_NEXT, "posix_memalign");
    table = mmap(NULL, sizeof(entry) * (size_t)CAP, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    ready = table != MAP_FAILED;
}

static void *early_alloc(size_t n) {
    void *p = early + early_used;
    early_used += (n + 15) & ~(size_t)15;
    return early_used <= sizeof early ? p : NULL;
}
static int is_early(const void *p) { return (const char *)p >= early && (const char *)p < early + sizeof early; }
static size_t slot(const void *p) { return (size_t)(((uintptr_t)p >> 4) * 11400714819323198485ull >> 42) & (CAP - 1); }

static void remember(void *p, size_t size) {
    if (!p || inside || !ready) return;
    inside = 1;
    void *frames[FRAMES + 2];
    int n = backtrace(frames, FRAMES + 2);
    pthread_mutex_lock(&lock);
    size_t i = slot(p);
    while (table[i].p && table[i].p != TOMBSTONE) i = (i + 1) & (CAP - 1);
    table[i].p = p;
    table[i].size = size;
    for (int k = 0; k < FRAMES; k++) table[i].frames[k] = k + 2 < n ? frames[k + 2] : NULL;   // past this shim
    pthread_mutex_unlock(&lock);
    inside = 0;
}

static void forget(void *p) {
    if (!p || !ready) return;
    pthread_mutex_lock(&lock);
    for (size_t i = slot(p); table[i].p; i = (i + 1) & (CAP - 1)) {
        if (table[i].p == p) { table[i].p = TOMBSTONE; break; }
    }
    pthread_mutex_unlock(&lock);
}

void *malloc(size_t n) {
    start_up();
    if (!real_malloc) return early_alloc(n);
    void *p = real_malloc(n);
    remember(p, n);
    return p;
}

void *calloc(size_t a, size_t b) {
    start_up();
    if (!real_calloc) { void *p = early_alloc(a * b); if (p) memset(p, 0, a * b); return p; }
    void *p = real_calloc(a, b);
    remember(p, a * b);
    return p;
}

void *realloc(void *old, size_t n) {
    start_up();
    if (is_early(old)) { void *p = malloc(n); if (p) memcpy(p, old, n); return p; }
    forget(old);
    void *p = real_realloc(old, n);
    remember(p, n);
    return p;
}

void free(void *p) {
    if (!p || is_early(p)) return;
    start_up();
    forget(p);
    real_free(p);
}

void *aligned_alloc(size_t alignment, size_t n) {
    start_up();
    void *p = real_aligned_alloc(alignment, n);
    remember(p, n);
    return p;
}

int posix_memalign(void **out, size_t alignment, size_t n) {
    start_up();
    int rc = real_posix_memalign(out, alignment, n);
    if (rc == 0) remember(*out, n);
    return rc;
}

void *memalign(size_t alignment, size_t n) {
    void *p = NULL;
    return posix_memalign(&p, alignment < sizeof(void *) ? sizeof(void *) : alignment, n) ? NULL : p;
}

static void dump(const char *path) {
    FILE *f = fopen(path, "w");
    if (!f) return;
    pthread_mutex_lock(&lock);
    for (size_t i = 0; i < CAP; i++) {
        if (!table[i].p || table[i].p == TOMBSTONE) continue;
        fprintf(f, "%zu", table[i].size);
        for (int k = 0; k < FRAMES && table[i].frames[k]; k++) {
            Dl_info d;
            if (dladdr(table[i].frames[k], &d) && d.dli_fname && d.dli_fbase)
                fprintf(f, " %s+%lx", d.dli_fname, (unsigned long)((char *)table[i].frames[k] - (char *)d.dli_fbase));
            else
                fprintf(f, " ?");
        }
        fputc('\n', f);
    }
    pthread_mutex_unlock(&lock);
    fclose(f);
}

static void *watch(void *arg) {
    const char *dir = arg;
    char trigger[4096], out[4096];
    snprintf(trigger, sizeof trigger, "%s/trigger", dir);
    snprintf(out, sizeof out, "%s/blocks-%d.txt", dir, (int)getpid());
    for (;;) {
        usleep(200000);
        if (access(trigger, F_OK) != 0) continue;
        inside = 1;   // this thread's own allocations (stdio) are not the program's
        dump(out);
        unlink(trigger);
    }
    return NULL;
}

__attribute__((constructor)) static void begin(void) {
    start_up();
    const char *dir = getenv("LIVE_BLOCKS_DIR");
    if (!dir) return;
    pthread_t t;
    inside = 1;
    pthread_create(&t, NULL, watch, (void *)dir);
    inside = 0;
}
