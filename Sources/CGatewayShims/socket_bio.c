// A socket BIO that remembers whether its last read drained the socket. With edge-triggered
// epoll, a read(2) that returns fewer bytes than asked for proves the receive queue was empty
// at that moment (epoll(7)), and the next arrival brings a new edge: the read after it that
// would only find EAGAIN need not be made. OpenSSL's own socket BIO cannot say this.
#include "CGatewayShims.h"
#include <openssl/bio.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

typedef struct {
    int fd;
    int drained;   // the last read returned less than asked for (or EAGAIN)
    int more;      // the caller writes more at once: send with MSG_MORE (gw_socket_bio_set_more)
    int corked;    // bytes sent with MSG_MORE may wait in the kernel for a push
} gw_socket_state;

static BIO_METHOD *method;
static pthread_once_t method_once = PTHREAD_ONCE_INIT;

// recv/send, not read/write: a socket needs none of the file layer that read(2) and write(2)
// pass through (vfs_read/vfs_write, the f_pos lookup, fsnotify). ~3 % less CPU per call in a
// loopback ping-pong (scripts/bench.d/sockcalls.c); send's MSG_NOSIGNAL also makes a write to a
// reset peer an EPIPE without relying on SIGPIPE being ignored.
static int sock_read(BIO *b, char *out, int len) {
    gw_socket_state *s = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    ssize_t n = recv(s->fd, out, (size_t)len, 0);
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
            BIO_set_retry_read(b);
            s->drained = errno != EINTR;
        }
        return -1;
    }
    s->drained = n < len;
    return (int)n;
}

static int sock_write(BIO *b, const char *in, int len) {
    gw_socket_state *s = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    ssize_t n = send(s->fd, in, (size_t)len, MSG_NOSIGNAL | (s->more ? MSG_MORE : 0));
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) BIO_set_retry_write(b);
    if (n > 0) s->corked = s->more;   // a send without MSG_MORE pushes all queued (TCP_NODELAY)
    return (int)n;
}

static long sock_ctrl(BIO *b, int cmd, long num, void *ptr) {
    (void)num;
    switch (cmd) {
    case BIO_CTRL_FLUSH: return 1;
    case BIO_C_GET_FD: {
        gw_socket_state *s = BIO_get_data(b);
        if (ptr) *(int *)ptr = s->fd;
        return s->fd;
    }
    // No KTLS, no EOF peeking, nothing pushed. OpenSSL asks the KTLS questions for every record
    // (24 calls per proxied keep-alive request): answered without a call back into libcrypto.
    default: return 0;
    }
}

static int sock_destroy(BIO *b) {
    free(BIO_get_data(b));   // the descriptor belongs to the connection, which closes it
    BIO_set_data(b, NULL);
    return 1;
}

static void make_method(void) {
    method = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK | BIO_TYPE_DESCRIPTOR, "gateway socket");
    BIO_meth_set_read(method, sock_read);
    BIO_meth_set_write(method, sock_write);
    BIO_meth_set_ctrl(method, sock_ctrl);
    BIO_meth_set_destroy(method, sock_destroy);
}

struct bio_st *gw_socket_bio_new(int fd) {
    pthread_once(&method_once, make_method);
    gw_socket_state *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    BIO *b = BIO_new(method);
    if (!b) { free(s); return NULL; }
    s->fd = fd;
    BIO_set_data(b, s);
    BIO_set_init(b, 1);
    return b;
}

void gw_socket_bio_clear_drained(struct bio_st *b) {
    gw_socket_state *s = BIO_get_data(b);
    if (s) s->drained = 0;
}

int gw_socket_bio_drained(struct bio_st *b) {
    gw_socket_state *s = BIO_get_data(b);
    return s ? s->drained : 0;
}

void gw_socket_bio_set_more(struct bio_st *b, int more) {
    gw_socket_state *s = BIO_get_data(b);
    if (s) s->more = more;
}

// Setting TCP_NODELAY (already on) makes the kernel send what MSG_MORE held back
// (tcp_push_pending_frames): for a write that stopped before its last record went out.
void gw_socket_bio_push(struct bio_st *b) {
    gw_socket_state *s = BIO_get_data(b);
    if (!s || !s->corked) return;
    s->corked = 0;
    int one = 1;
    (void)setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}
