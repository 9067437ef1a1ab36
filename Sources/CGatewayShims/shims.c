#include "CGatewayShims.h"
#include <openssl/ssl.h>
#include <openssl/err.h>
#include <openssl/bio.h>
#include <openssl/x509.h>
#include <zlib.h>
#include <pthread.h>

int gw_accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags) { return accept4(fd, addr, len, flags); }

int gw_ssl_ctx_set_min_proto_version(SSL_CTX *ctx, int v) { return (int)SSL_CTX_set_min_proto_version(ctx, v); }
int gw_ssl_ctx_set_max_proto_version(SSL_CTX *ctx, int v) { return (int)SSL_CTX_set_max_proto_version(ctx, v); }
int gw_ssl_set_min_proto_version(SSL *ssl, int v) { return (int)SSL_set_min_proto_version(ssl, v); }
int gw_ssl_set_max_proto_version(SSL *ssl, int v) { return (int)SSL_set_max_proto_version(ssl, v); }
int gw_ssl_set_tlsext_host_name(SSL *ssl, const char *name) { return (int)SSL_set_tlsext_host_name(ssl, name); }
long gw_ssl_ctx_set_session_cache_mode(SSL_CTX *ctx, long mode) { return SSL_CTX_set_session_cache_mode(ctx, mode); }
long gw_ssl_ctx_get_session_cache_mode(SSL_CTX *ctx) { return SSL_CTX_get_session_cache_mode(ctx); }
long gw_ssl_ctx_sess_set_cache_size(SSL_CTX *ctx, long size) { return SSL_CTX_sess_set_cache_size(ctx, size); }
long gw_ssl_ctx_set_mode(SSL_CTX *ctx, long mode) { return SSL_CTX_set_mode(ctx, mode); }
void gw_ssl_ctx_set_read_ahead(SSL_CTX *ctx, int yes) { SSL_CTX_set_read_ahead(ctx, yes); }
int gw_ssl_ctx_set_servername_callback(SSL_CTX *ctx, int (*cb)(SSL *, int *, void *)) {
    return (int)SSL_CTX_set_tlsext_servername_callback(ctx, cb);
}
int gw_ssl_ctx_set1_groups_list(SSL_CTX *ctx, const char *list) { return (int)SSL_CTX_set1_groups_list(ctx, list); }
int gw_ssl_set1_groups_list(SSL *ssl, const char *list) { return (int)SSL_set1_groups_list(ssl, list); }
// Whether this OpenSSL knows every group of `list`: set on a throwaway server context (what
// a host's context will do at load), errors cleared. For the config parser, which sits below
// GatewayTLS and must not call OpenSSL's TLS API itself.
int gw_groups_list_supported(const char *list) {
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) return -1;
    int ok = SSL_CTX_set1_groups_list(ctx, list) == 1;
    SSL_CTX_free(ctx);
    ERR_clear_error();
    return ok;
}
// What SSL_get_error says of an I/O call that has to wait (1: WANT_READ, 2: WANT_WRITE, 0: it
// did not wait), from the SSL's rwstate and its BIO's retry flags alone: the part of SSL_get_error
// that comes after it looks at the thread's error queue. So an error another call left in the
// queue cannot turn a wait into a failure, and SSL_read/SSL_write need no ERR_peek_error before
// them (~200 instructions each: the thread's error state is looked up every time).
int gw_ssl_retry(const SSL *ssl) {
    BIO *b;
    switch (SSL_want(ssl)) {
    case SSL_READING: b = SSL_get_rbio(ssl); break;
    case SSL_WRITING: b = SSL_get_wbio(ssl); break;
    default: return 0;
    }
    if (b == NULL) return 0;
    if (BIO_should_read(b)) return 1;
    if (BIO_should_write(b)) return 2;
    return 0;
}
// The peer's close_notify (or, with SSL_OP_IGNORE_UNEXPECTED_EOF, its EOF) was read.
int gw_ssl_received_shutdown(const SSL *ssl) { return (SSL_get_shutdown(ssl) & SSL_RECEIVED_SHUTDOWN) != 0; }
int gw_ssl_get_ex_new_index(void) { return SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL); }
int gw_ssl_ctx_get_ex_new_index(void) { return SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, NULL); }
long gw_bio_get_mem_data(BIO *bio, char **data) { return BIO_get_mem_data(bio, data); }
void gw_openssl_free(void *ptr) { OPENSSL_free(ptr); }

// SHA-256 fetched once: handing OpenSSL 3.0 the legacy EVP_sha256() makes every digest call
// fetch (and free) the provider's implementation first.
static EVP_MD *sha256_md;
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;
static void fetch_sha256(void) { sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL); }
const struct evp_md_st *gw_sha256(void) {
    pthread_once(&sha256_once, fetch_sha256);
    return sha256_md != NULL ? sha256_md : EVP_sha256();
}
unsigned long gw_xn_flag_rfc2253(void) { return XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB; }

uint64_t gw_ssl_op_no_renegotiation(void) { return SSL_OP_NO_RENEGOTIATION; }
uint64_t gw_ssl_op_no_compression(void) { return SSL_OP_NO_COMPRESSION; }
uint64_t gw_ssl_op_cipher_server_preference(void) { return SSL_OP_CIPHER_SERVER_PREFERENCE; }
uint64_t gw_ssl_op_no_ticket(void) { return SSL_OP_NO_TICKET; }
uint64_t gw_ssl_op_ignore_unexpected_eof(void) { return SSL_OP_IGNORE_UNEXPECTED_EOF; }
uint64_t gw_ssl_op_no_tls_versions(void) { return SSL_OP_NO_SSL_MASK; }
long gw_ssl_mode_release_buffers(void) { return SSL_MODE_RELEASE_BUFFERS; }
long gw_ssl_mode_accept_moving_write_buffer(void) { return SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER; }
long gw_ssl_mode_enable_partial_write(void) { return SSL_MODE_ENABLE_PARTIAL_WRITE; }
long gw_ssl_sess_cache_server(void) { return SSL_SESS_CACHE_SERVER; }
long gw_ssl_sess_cache_client(void) { return SSL_SESS_CACHE_CLIENT; }
long gw_ssl_sess_cache_off(void) { return SSL_SESS_CACHE_OFF; }
int gw_ssl_tlsext_err_ok(void) { return SSL_TLSEXT_ERR_OK; }
int gw_ssl_tlsext_err_alert_fatal(void) { return SSL_TLSEXT_ERR_ALERT_FATAL; }
int gw_ssl_tlsext_err_noack(void) { return SSL_TLSEXT_ERR_NOACK; }
int gw_ssl_client_hello_success(void) { return SSL_CLIENT_HELLO_SUCCESS; }
int gw_ssl_client_hello_error(void) { return SSL_CLIENT_HELLO_ERROR; }
int gw_ssl_ad_unrecognized_name(void) { return SSL_AD_UNRECOGNIZED_NAME; }
int gw_ssl_ad_decode_error(void) { return SSL_AD_DECODE_ERROR; }
int gw_ssl_ad_illegal_parameter(void) { return SSL_AD_ILLEGAL_PARAMETER; }
int gw_ssl_ad_handshake_failure(void) { return SSL_AD_HANDSHAKE_FAILURE; }
int gw_ssl_ad_protocol_version(void) { return SSL_AD_PROTOCOL_VERSION; }
int gw_ssl_ad_access_denied(void) { return SSL_AD_ACCESS_DENIED; }

int gw_deflate_init2(struct z_stream_s *strm, int level, int window_bits, int mem_level) {
    return deflateInit2(strm, level, Z_DEFLATED, window_bits, mem_level, Z_DEFAULT_STRATEGY);
}
int gw_inflate_init2(struct z_stream_s *strm, int window_bits) { return inflateInit2(strm, window_bits); }

#include <malloc.h>
void gw_malloc_tune(int trim_threshold, int top_pad) {
    mallopt(M_TRIM_THRESHOLD, trim_threshold);
    mallopt(M_TOP_PAD, top_pad);
}

// Gives the kernel back the free memory of the calling thread's arena and of every arena's free
// chunks, then restores the server's settings. malloc_trim alone shrinks only the main arena's
// top: a worker's arena gives its top back from free() (heap_trim), when the top exceeds the trim
// threshold, so the thresholds go to zero for one free of a block large enough to consolidate
// (>= 64 KiB, below the 128 KiB mmap threshold, so it comes from this thread's arena).
void gw_malloc_release(int trim_threshold, int top_pad) {
    mallopt(M_TOP_PAD, 0);
    mallopt(M_TRIM_THRESHOLD, 0);
    void *p = malloc(96 * 1024);
    free(p);
    malloc_trim(0);
    mallopt(M_TRIM_THRESHOLD, trim_threshold);
    mallopt(M_TOP_PAD, top_pad);
}
