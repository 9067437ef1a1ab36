/* LD_PRELOAD for wrk: a full TLS handshake on every reconnect.
 * wrk keeps one SSL object per connection slot and calls SSL_clear() before reconnecting;
 * SSL_clear() keeps the last session, so "Connection: close" runs would otherwise measure
 * TLS 1.3 resumptions. Forgetting the session first makes every reconnect a full handshake. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stddef.h>

typedef struct ssl_st SSL;
typedef struct ssl_session_st SSL_SESSION;
int SSL_set_session(SSL *s, SSL_SESSION *session);

int SSL_clear(SSL *s) {
    static int (*next)(SSL *);
    if (!next) next = (int (*)(SSL *))dlsym(RTLD_NEXT, "SSL_clear");
    SSL_set_session(s, NULL);
    return next(s);
}
