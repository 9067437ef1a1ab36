/* count_malloc.so: counts heap calls and requested bytes of a process, exactly, per thread.
 *   gcc -O2 -shared -fPIC -Wl,-z,now -o count_malloc.so count_malloc.c -ldl -lpthread
 *   ALLOC_COUNT_DIR=/tmp/d LD_PRELOAD=./count_malloc.so gateway run -c ...
 *   touch /tmp/d/req.TAG   ->  each process under the shim writes /tmp/d/TAG.PID.json
 *
 * Counting. Every thread owns one slot of a global array (claimed with one atomic increment the
 * first time the thread calls into the allocator; its address is kept in an initial-exec
 * thread-local, which costs no call and never allocates). A thread only ever writes its own
 * slot, with relaxed atomic load+store pairs (plain moves on x86-64: no lock, no RMW), so the
 * fast path adds a handful of instructions and takes no lock. Threads beyond MAX_SLOTS share a
 * last slot with atomic adds (still exact). A slot outlives its thread: counts are cumulative.
 *
 * Reading. A reporter thread, started by the constructor with every signal blocked (so it can
 * never take a signal meant for the program, e.g. one that waits with sigtimedwait), sleeps on
 * inotify for ALLOC_COUNT_DIR. When a file "req.TAG" is created there it sums the slots (relaxed
 * loads), re-reads every 20 ms until two reads in a row are equal (the program has finished the
 * work in flight), and writes TAG.PID.json (written to a temporary name, then renamed). It
 * allocates nothing itself and its own slot is excluded. The program is not interrupted: no
 * signal, no EINTR, no extra wake-up of its threads. After fork() the child starts its own
 * reporter (pthread_atfork), so nginx's worker reports as well as its master.
 *
 * Callers. Each new block and resize is also counted by the object (executable or shared library)
 * holding its return address: the immediate caller, or that caller's caller where it tail-calls
 * malloc. So Swift's allocations all show as libswiftCore.so (swift_slowAlloc), OpenSSL's as
 * libssl.so.3 or libcrypto.so.3 (CRYPTO_malloc tail-calls malloc: the object that called it),
 * the gateway's C shims as the executable. The objects' code ranges are read once at start
 * (dl_iterate_phdr); a caller in a library loaded later counts as "other".
 *
 * Bootstrap. dlsym() may call calloc/malloc before the real functions are known: those calls
 * are served from a small static arena (not counted; free() of such a block is a no-op).
 *
 * Swift retains and releases. The shim also defines swift_retain, swift_release, their _n,
 * swift_nonatomic_ and swift_bridgeObject forms: each counts a call on a real object (what the
 * runtime tests first: a positive pointer; NULL and the negative immortal/small-string values
 * return at once), by caller object like the allocations, and tail-calls libswiftCore's. That is
 * every call that crosses the PLT into libswiftCore: all of the program's own (specialized and
 * inlined stdlib code included), none that libswiftCore makes inside itself (its unspecialized
 * generic code, e.g. a `swift_arrayInitWithCopy`); callgrind's call counts give those. A call of
 * an _n form counts once (one atomic operation, whatever its n). "retain_calls"/"release_calls"
 * count every call, NULL and negative included (what callgrind's call counts show). The runtime's hook pointers
 * (_swift_retain, ... with _swift_enableSwizzlingOfAllocationAndRefCountingFunctions_
 * forInstrumentsOnly) would see the inner calls too, but Swift 6.3's retain adapter masks the
 * pointer's top byte before it calls the hook, so a hook cannot tell a small string (negative,
 * "return at once") from an object, and calling on crashes: not used.
 *
 * What is counted: malloc, calloc, realloc, reallocarray, free, posix_memalign, aligned_alloc,
 * memalign, valloc, pvalloc. "allocs" = calls that return a new block (malloc, calloc, the
 * aligned ones, realloc/reallocarray of NULL); "reallocs" = resizes of an existing block;
 * "frees" = free of a non-NULL pointer (and realloc to size 0); "bytes" = requested sizes of
 * allocs and the new sizes of reallocs (what valgrind's dhat sums as "total bytes").
 * glibc's own internal calls (strdup, fopen, ...) go through these symbols and are counted.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <malloc.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define EXPORT __attribute__((visibility("default")))
#define TLS_IE __attribute__((tls_model("initial-exec")))

enum { K_MALLOC, K_CALLOC, K_ALIGNED, K_REALLOC_NEW, K_REALLOC, K_FREE, K_BYTES,
       K_RETAIN, K_RELEASE, K_RETAIN_CALLS, K_RELEASE_CALLS, K_N };
static const char *const names[K_N] = {"malloc", "calloc", "aligned", "realloc_null", "reallocs", "frees", "bytes",
                                       "retains", "releases", "retain_calls", "release_calls"};

#define MAX_LIBS 31                            /* code ranges known; index MAX_LIBS = "other" */

typedef struct {
    _Atomic uint64_t c[K_N];
    _Atomic uint64_t by_lib[MAX_LIBS + 1];     /* allocs + reallocs by immediate caller */
    _Atomic uint64_t rr_by_lib[MAX_LIBS + 1];  /* retains + releases by immediate caller */
    _Atomic int32_t tid;
    _Atomic int32_t excluded;   /* the reporter's own slot */
} __attribute__((aligned(64))) slot_t;

#define MAX_SLOTS 1024
static slot_t slots[MAX_SLOTS + 1];           /* the last one is shared by threads past MAX_SLOTS */
static _Atomic uint32_t claimed;
static __thread slot_t *my_slot TLS_IE;
static __thread int resolving TLS_IE;

static void *(*real_malloc)(size_t);
static void *(*real_calloc)(size_t, size_t);
static void *(*real_realloc)(void *, size_t);
static void (*real_free)(void *);
static int (*real_posix_memalign)(void **, size_t, size_t);
static void *(*real_aligned_alloc)(size_t, size_t);
static void *(*real_memalign)(size_t, size_t);
static void *(*real_valloc)(size_t);
static void *(*real_pvalloc)(size_t);

static struct { uintptr_t lo, hi; char name[64]; } libs[MAX_LIBS];
static int nlibs;

/* ---- bootstrap arena ---- */
static _Alignas(64) char arena[64 * 1024];
static _Atomic size_t arena_used;

static void *arena_alloc(size_t n, int zero) {
    (void)zero;                                 /* static memory is zero already and never reused */
    size_t need = (n + 16 + 15) & ~(size_t)15;
    size_t at = atomic_fetch_add(&arena_used, need);
    if (at + need > sizeof arena) return NULL;
    *(size_t *)(arena + at) = n;
    return arena + at + 16;
}

static int in_arena(const void *p) {
    return (const char *)p >= arena && (const char *)p < arena + sizeof arena;
}

static void resolve(void) {
    resolving = 1;
    real_free = dlsym(RTLD_NEXT, "free");
    real_calloc = dlsym(RTLD_NEXT, "calloc");
    real_realloc = dlsym(RTLD_NEXT, "realloc");
    real_posix_memalign = dlsym(RTLD_NEXT, "posix_memalign");
    real_aligned_alloc = dlsym(RTLD_NEXT, "aligned_alloc");
    real_memalign = dlsym(RTLD_NEXT, "memalign");
    real_valloc = dlsym(RTLD_NEXT, "valloc");
    real_pvalloc = dlsym(RTLD_NEXT, "pvalloc");
    real_malloc = dlsym(RTLD_NEXT, "malloc");
    resolving = 0;
}

/* True once the real function is known; resolves them all on the first call (but not while
 * resolving: dlsym's own allocations then go to the arena). */
#define READY(fn) (__builtin_expect((fn) != NULL, 1) || (resolving ? 0 : (resolve(), (fn) != NULL)))

/* ---- counting ---- */
static slot_t *claim(void) {
    uint32_t i = atomic_fetch_add_explicit(&claimed, 1, memory_order_relaxed);
    slot_t *s = &slots[i < MAX_SLOTS ? i : MAX_SLOTS];
    if (i < MAX_SLOTS) atomic_store_explicit(&s->tid, (int32_t)syscall(SYS_gettid), memory_order_relaxed);
    my_slot = s;
    return s;
}

static inline slot_t *mine(void) {
    slot_t *s = my_slot;
    return __builtin_expect(s != NULL, 1) ? s : claim();
}

/* Only this thread writes its slot: a relaxed load and store, no read-modify-write, no lock. */
static inline void add(slot_t *s, int k, uint64_t v) {
    if (__builtin_expect(s == &slots[MAX_SLOTS], 0))
        atomic_fetch_add_explicit(&s->c[k], v, memory_order_relaxed);
    else
        atomic_store_explicit(&s->c[k], atomic_load_explicit(&s->c[k], memory_order_relaxed) + v, memory_order_relaxed);
}

static inline int lib_of(uintptr_t pc) {
    for (int i = 0; i < nlibs; i++)
        if (pc - libs[i].lo < libs[i].hi - libs[i].lo) return i;
    return MAX_LIBS;
}

static inline void counted_at(int k, size_t bytes, void *caller) {
    slot_t *s = mine();
    add(s, k, 1);
    add(s, K_BYTES, bytes);
    int l = lib_of((uintptr_t)caller);
    if (__builtin_expect(s == &slots[MAX_SLOTS], 0))
        atomic_fetch_add_explicit(&s->by_lib[l], 1, memory_order_relaxed);
    else
        atomic_store_explicit(&s->by_lib[l], atomic_load_explicit(&s->by_lib[l], memory_order_relaxed) + 1, memory_order_relaxed);
}

#define counted(k, bytes) counted_at((k), (bytes), __builtin_return_address(0))

static inline void freed(void) {
    add(mine(), K_FREE, 1);
}

/* ---- Swift retain/release ---- */
typedef void *(*retain_fn)(void *);
typedef void (*release_fn)(void *);
typedef void *(*retain_n_fn)(void *, uint32_t);
typedef void (*release_n_fn)(void *, uint32_t);

/* What the runtime tests before it touches a reference count: NULL, and the negative values
 * of immortal and small-string bridge objects, return at once. */
static inline int real_object(const void *p) { return (intptr_t)p > 0; }

static inline void rr_counted(int k, void *caller) {
    slot_t *s = mine();
    add(s, k, 1);
    int l = lib_of((uintptr_t)caller);
    if (__builtin_expect(s == &slots[MAX_SLOTS], 0))
        atomic_fetch_add_explicit(&s->rr_by_lib[l], 1, memory_order_relaxed);
    else
        atomic_store_explicit(&s->rr_by_lib[l], atomic_load_explicit(&s->rr_by_lib[l], memory_order_relaxed) + 1, memory_order_relaxed);
}

/* Each wrapper counts a call on a real object, by caller, and tail-calls the next definition
 * (libswiftCore's), looked up once. Only a Swift program ever calls them. */
#define RR(k, name, type, ret, params, ...) \
    EXPORT ret name params { \
        static type next; \
        if (__builtin_expect(next == NULL, 0)) next = (type)dlsym(RTLD_NEXT, #name); \
        if (real_object(p)) rr_counted(k, __builtin_return_address(0)); \
        add(mine(), k == K_RETAIN ? K_RETAIN_CALLS : K_RELEASE_CALLS, 1); \
        return next(__VA_ARGS__); \
    }

RR(K_RETAIN, swift_retain, retain_fn, void *, (void *p), p)
RR(K_RETAIN, swift_retain_n, retain_n_fn, void *, (void *p, uint32_t n), p, n)
RR(K_RETAIN, swift_nonatomic_retain, retain_fn, void *, (void *p), p)
RR(K_RETAIN, swift_nonatomic_retain_n, retain_n_fn, void *, (void *p, uint32_t n), p, n)
RR(K_RETAIN, swift_bridgeObjectRetain, retain_fn, void *, (void *p), p)
RR(K_RETAIN, swift_bridgeObjectRetain_n, retain_n_fn, void *, (void *p, uint32_t n), p, n)
RR(K_RELEASE, swift_release, release_fn, void, (void *p), p)
RR(K_RELEASE, swift_release_n, release_n_fn, void, (void *p, uint32_t n), p, n)
RR(K_RELEASE, swift_nonatomic_release, release_fn, void, (void *p), p)
RR(K_RELEASE, swift_nonatomic_release_n, release_n_fn, void, (void *p, uint32_t n), p, n)
RR(K_RELEASE, swift_bridgeObjectRelease, release_fn, void, (void *p), p)
RR(K_RELEASE, swift_bridgeObjectRelease_n, release_n_fn, void, (void *p, uint32_t n), p, n)

/* ---- the interposed functions ---- */
EXPORT void *malloc(size_t n) {
    if (!READY(real_malloc)) return arena_alloc(n, 0);
    counted(K_MALLOC, n);
    return real_malloc(n);
}

EXPORT void *calloc(size_t a, size_t b) {
    if (!READY(real_calloc)) {
        size_t n;
        return __builtin_mul_overflow(a, b, &n) ? NULL : arena_alloc(n, 1);
    }
    size_t n;
    counted(K_CALLOC, __builtin_mul_overflow(a, b, &n) ? 0 : n);
    return real_calloc(a, b);
}

EXPORT void free(void *p) {
    if (p == NULL || in_arena(p)) return;
    if (!READY(real_free)) return;              /* not seen: p came from the real malloc */
    freed();
    real_free(p);
}

EXPORT void *realloc(void *p, size_t n) {
    if (in_arena(p)) {                          /* a bootstrap block: move it to the real heap */
        size_t old = *(size_t *)((char *)p - 16);
        void *q = malloc(n);
        if (q) memcpy(q, p, old < n ? old : n);
        return q;
    }
    if (!READY(real_realloc)) return p ? NULL : arena_alloc(n, 0);
    if (p == NULL) counted(K_REALLOC_NEW, n);
    else if (n == 0) freed();
    else counted(K_REALLOC, n);
    return real_realloc(p, n);
}

EXPORT void *reallocarray(void *p, size_t a, size_t b) {
    size_t n;
    if (__builtin_mul_overflow(a, b, &n)) { errno = ENOMEM; return NULL; }
    if (in_arena(p) || !READY(real_realloc)) return realloc(p, n);
    if (p == NULL) counted(K_REALLOC_NEW, n);
    else if (n == 0) freed();
    else counted(K_REALLOC, n);
    return real_realloc(p, n);
}

EXPORT int posix_memalign(void **out, size_t align, size_t n) {
    if (!READY(real_posix_memalign)) return ENOMEM;   /* only while dlsym runs; not seen */
    counted(K_ALIGNED, n);
    return real_posix_memalign(out, align, n);
}

EXPORT void *aligned_alloc(size_t align, size_t n) {
    if (!READY(real_aligned_alloc)) return NULL;
    counted(K_ALIGNED, n);
    return real_aligned_alloc(align, n);
}

EXPORT void *memalign(size_t align, size_t n) {
    if (!READY(real_memalign)) return NULL;
    counted(K_ALIGNED, n);
    return real_memalign(align, n);
}

EXPORT void *valloc(size_t n) {
    if (!READY(real_valloc)) return NULL;
    counted(K_ALIGNED, n);
    return real_valloc(n);
}

EXPORT void *pvalloc(size_t n) {
    if (!READY(real_pvalloc)) return NULL;
    counted(K_ALIGNED, n);
    return real_pvalloc(n);
}

/* ---- the reporter ---- */
static char dir[512];

static int counts_toward_total(uint32_t i) {
    return i == MAX_SLOTS || !atomic_load_explicit(&slots[i].excluded, memory_order_relaxed);
}

/* The claimed slots, then the shared overflow slot if any thread got it. */
static uint32_t slots_used(void) {
    uint32_t n = atomic_load(&claimed);
    return n < MAX_SLOTS ? n : MAX_SLOTS;
}

#define N_SUM (K_N + 2 * (MAX_LIBS + 1))      /* the counters, then the callers (allocs, then retains) */

static void sum(uint64_t out[N_SUM]) {
    memset(out, 0, sizeof(uint64_t) * N_SUM);
    uint32_t n = slots_used();
    for (uint32_t i = 0; i <= MAX_SLOTS; i++) {
        if (i >= n && i != MAX_SLOTS) continue;
        if (!counts_toward_total(i)) continue;
        for (int k = 0; k < K_N; k++) out[k] += atomic_load_explicit(&slots[i].c[k], memory_order_relaxed);
        for (int l = 0; l <= MAX_LIBS; l++) out[K_N + l] += atomic_load_explicit(&slots[i].by_lib[l], memory_order_relaxed);
        for (int l = 0; l <= MAX_LIBS; l++)
            out[K_N + MAX_LIBS + 1 + l] += atomic_load_explicit(&slots[i].rr_by_lib[l], memory_order_relaxed);
    }
}

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {}
}

static int put(int fd, const char *s, size_t n) {
    while (n > 0) {
        ssize_t w = write(fd, s, n);
        if (w < 0) { if (errno == EINTR) continue; return -1; }
        s += w; n -= (size_t)w;
    }
    return 0;
}

static void counters_json(char *b, size_t cap, const uint64_t c[K_N]) {
    uint64_t allocs = c[K_MALLOC] + c[K_CALLOC] + c[K_ALIGNED] + c[K_REALLOC_NEW];
    int n = snprintf(b, cap, "\"allocs\": %llu", (unsigned long long)allocs);
    for (int k = 0; k < K_N && n > 0 && (size_t)n < cap; k++)
        n += snprintf(b + n, cap - (size_t)n, ", \"%s\": %llu", names[k], (unsigned long long)c[k]);
}

static void report(const char *tag) {
    uint64_t a[N_SUM], b[N_SUM];
    int waited = 0, stable = 0;
    sum(a);
    for (; waited < 5000; waited += 20) {      /* until two reads 20 ms apart agree (5 s at most) */
        sleep_ms(20);
        sum(b);
        if (memcmp(a, b, sizeof a) == 0) { stable = 1; break; }
        memcpy(a, b, sizeof a);
    }
    char path[700], tmp[720], line[1024];
    int pid = (int)getpid();
    snprintf(path, sizeof path, "%s/%s.%d.json", dir, tag, pid);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return;
    char counters[512];
    counters_json(counters, sizeof counters, a);
    int n = snprintf(line, sizeof line, "{\"pid\": %d, \"tag\": \"%s\", \"stable\": %s, \"settle_ms\": %d,\n \"total\": {%s},\n \"threads\": [",
                     pid, tag, stable ? "true" : "false", waited + 20, counters);
    put(fd, line, (size_t)n);
    uint32_t used = slots_used();
    int first = 1;
    for (uint32_t i = 0; i <= MAX_SLOTS; i++) {
        if (i >= used && i != MAX_SLOTS) continue;
        slot_t *s = &slots[i];
        uint64_t c[K_N], any = 0;
        for (int k = 0; k < K_N; k++) any |= c[k] = atomic_load_explicit(&s->c[k], memory_order_relaxed);
        if (i == MAX_SLOTS && !any) continue;
        counters_json(counters, sizeof counters, c);
        n = snprintf(line, sizeof line, "%s\n  {\"slot\": %u, \"tid\": %d, \"reporter\": %s, %s}", first ? "" : ",", i,
                     i == MAX_SLOTS ? -1 : (int)atomic_load(&s->tid), counts_toward_total(i) ? "false" : "true", counters);
        put(fd, line, (size_t)n);
        first = 0;
    }
    static const char by_caller[] = "\n],\n \"by_caller\": {";
    put(fd, by_caller, sizeof by_caller - 1);
    first = 1;
    for (int l = 0; l <= MAX_LIBS; l++) {
        if (l < MAX_LIBS && l >= nlibs) continue;
        n = snprintf(line, sizeof line, "%s\"%s\": %llu", first ? "" : ", ", l == MAX_LIBS ? "other" : libs[l].name,
                     (unsigned long long)a[K_N + l]);
        put(fd, line, (size_t)n);
        first = 0;
    }
    /* rr_by_caller: retains + releases by immediate caller */
    static const char rr_by_caller[] = "},\n \"rr_by_caller\": {";
    n = (int)sizeof rr_by_caller - 1;
    memcpy(line, rr_by_caller, (size_t)n);
    put(fd, line, (size_t)n);
    first = 1;
    for (int l = 0; l <= MAX_LIBS; l++) {
        if (l < MAX_LIBS && l >= nlibs) continue;
        n = snprintf(line, sizeof line, "%s\"%s\": %llu", first ? "" : ", ", l == MAX_LIBS ? "other" : libs[l].name,
                     (unsigned long long)a[K_N + MAX_LIBS + 1 + l]);
        put(fd, line, (size_t)n);
        first = 0;
    }
    put(fd, "}}\n", 3);   /* by_caller counts allocs + reallocs */
    close(fd);
    rename(tmp, path);
}

static void *reporter(void *arg) {
    (void)arg;
    /* Claim this thread's slot first and exclude it: whatever libc does for us is not counted. */
    slot_t *s = mine();
    if (s != &slots[MAX_SLOTS]) atomic_store(&s->excluded, 1);
    int fd = inotify_init1(IN_CLOEXEC);
    if (fd < 0 || inotify_add_watch(fd, dir, IN_CREATE | IN_MOVED_TO) < 0) return NULL;
    _Alignas(struct inotify_event) char buf[8192];
    for (;;) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return NULL;
        for (char *p = buf; p < buf + n;) {
            struct inotify_event *e = (struct inotify_event *)p;
            if (e->len > 4 && strncmp(e->name, "req.", 4) == 0 && strchr(e->name + 4, '/') == NULL) report(e->name + 4);
            p += sizeof *e + e->len;
        }
    }
}

static void start_reporter(void) {
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);  /* the new thread inherits "everything blocked" */
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, 256 * 1024);
    pthread_t t;
    pthread_create(&t, &attr, reporter, NULL);
    pthread_attr_destroy(&attr);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
}

static void after_fork_child(void) {
    my_slot = NULL;                             /* the child's thread counts in a fresh slot */
    start_reporter();
}

static int add_lib(struct dl_phdr_info *info, size_t size, void *arg) {
    (void)size; (void)arg;
    const char *path = info->dlpi_name && *info->dlpi_name ? info->dlpi_name : "(executable)";
    const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    if (strncmp(base, "linux-vdso", 10) == 0) return 0;
    for (int i = 0; i < info->dlpi_phnum && nlibs < MAX_LIBS; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_X)) continue;
        libs[nlibs].lo = info->dlpi_addr + ph->p_vaddr;
        libs[nlibs].hi = libs[nlibs].lo + ph->p_memsz;
        snprintf(libs[nlibs].name, sizeof libs[nlibs].name, "%s", base);
        nlibs++;
    }
    return 0;
}

__attribute__((constructor)) static void init(void) {
    if (!real_malloc && !resolving) resolve();
    /* Every object the program links is mapped before any constructor runs. Until nlibs is set
     * (here, before the program's threads exist) every caller counts as "other". */
    static int filled;
    if (!filled) { filled = 1; dl_iterate_phdr(add_lib, NULL); }
    const char *d = getenv("ALLOC_COUNT_DIR");
    if (d == NULL || *d == 0 || strlen(d) >= sizeof dir) return;
    strcpy(dir, d);
    pthread_atfork(NULL, NULL, after_fork_child);
    start_reporter();
}
