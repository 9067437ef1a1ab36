// The C surface Swift cannot import directly: function-like macros of OpenSSL 3 and
// zlib, SSL_OP_* constants, and Linux headers that are not part of Swift's Glibc module.
// OpenSSL types are forward-declared (they arrive in Swift as OpaquePointer) so that
// this header does not re-export OpenSSL's declarations beside the COpenSSL module.
#ifndef CGATEWAY_SHIMS_H
#define CGATEWAY_SHIMS_H

#include <stdint.h>
#include <stddef.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>

struct ssl_st;
struct ssl_ctx_st;
struct bio_st;
struct z_stream_s;
struct evp_md_st;

int gw_accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags);

// SSL_CTX / SSL macros.
int gw_ssl_ctx_set_min_proto_version(struct ssl_ctx_st *ctx, int version);
int gw_ssl_ctx_set_max_proto_version(struct ssl_ctx_st *ctx, int version);
int gw_ssl_set_min_proto_version(struct ssl_st *ssl, int version);
int gw_ssl_set_max_proto_version(struct ssl_st *ssl, int version);
int gw_ssl_set_tlsext_host_name(struct ssl_st *ssl, const char *name);
long gw_ssl_ctx_set_session_cache_mode(struct ssl_ctx_st *ctx, long mode);
long gw_ssl_ctx_get_session_cache_mode(struct ssl_ctx_st *ctx);
long gw_ssl_ctx_sess_set_cache_size(struct ssl_ctx_st *ctx, long size);
long gw_ssl_ctx_set_mode(struct ssl_ctx_st *ctx, long mode);
void gw_ssl_ctx_set_read_ahead(struct ssl_ctx_st *ctx, int yes);
int gw_ssl_ctx_set_servername_callback(struct ssl_ctx_st *ctx, int (*cb)(struct ssl_st *, int *, void *));
int gw_ssl_ctx_set1_groups_list(struct ssl_ctx_st *ctx, const char *list);
int gw_ssl_set1_groups_list(struct ssl_st *ssl, const char *list);
/// 1: every group of `list` is known to this OpenSSL; 0: not; -1: no context could be made.
int gw_groups_list_supported(const char *list);
/// 1: the last I/O call waits to read, 2: to write, 0: it did not wait (SSL_get_error without the error queue).
int gw_ssl_retry(const struct ssl_st *ssl);
/// 1: the peer's close_notify (or EOF, with SSL_OP_IGNORE_UNEXPECTED_EOF) was read.
int gw_ssl_received_shutdown(const struct ssl_st *ssl);
int gw_ssl_get_ex_new_index(void);
int gw_ssl_ctx_get_ex_new_index(void);
long gw_bio_get_mem_data(struct bio_st *bio, char **data);
// A socket BIO that knows whether its last read drained the socket (socket_bio.c).
struct bio_st *gw_socket_bio_new(int fd);
void gw_socket_bio_clear_drained(struct bio_st *bio);
int gw_socket_bio_drained(struct bio_st *bio);
void gw_socket_bio_set_more(struct bio_st *bio, int more);
void gw_socket_bio_push(struct bio_st *bio);
void gw_openssl_free(void *ptr);
// SHA-256 as a fetched EVP_MD (one fetch per process, not one per digest call).
const struct evp_md_st *gw_sha256(void);
unsigned long gw_xn_flag_rfc2253(void);  // XN_FLAG_RFC2253 without ASN1_STRFLGS_ESC_MSB (UTF-8 kept)

// SSL_OP_* (SSL_OP_BIT(n) macros in 3.0) and SSL_MODE_*/SSL_SESS_CACHE_* constants.
uint64_t gw_ssl_op_no_renegotiation(void);
uint64_t gw_ssl_op_no_compression(void);
uint64_t gw_ssl_op_cipher_server_preference(void);
uint64_t gw_ssl_op_no_ticket(void);
uint64_t gw_ssl_op_ignore_unexpected_eof(void);
uint64_t gw_ssl_op_no_tls_versions(void);  // SSL_OP_NO_SSLv3|TLSv1|...: cleared so min/max alone decide
long gw_ssl_mode_release_buffers(void);
long gw_ssl_mode_accept_moving_write_buffer(void);
long gw_ssl_mode_enable_partial_write(void);
long gw_ssl_sess_cache_server(void);
long gw_ssl_sess_cache_client(void);
long gw_ssl_sess_cache_off(void);
int gw_ssl_tlsext_err_ok(void);
int gw_ssl_tlsext_err_alert_fatal(void);
int gw_ssl_tlsext_err_noack(void);
int gw_ssl_client_hello_success(void);
int gw_ssl_client_hello_error(void);
int gw_ssl_ad_unrecognized_name(void);
int gw_ssl_ad_decode_error(void);
int gw_ssl_ad_illegal_parameter(void);
int gw_ssl_ad_handshake_failure(void);
int gw_ssl_ad_protocol_version(void);
int gw_ssl_ad_access_denied(void);

// zlib macros.
int gw_deflate_init2(struct z_stream_s *strm, int level, int window_bits, int mem_level);
int gw_inflate_init2(struct z_stream_s *strm, int window_bits);

// Session ticket keys (ticket_keys.c): an immutable key ring per snapshot or rotation, attached
// to each server SSL; the first key encrypts, all decrypt.
#define GW_TICKET_KEY_SIZE 80
#define GW_TICKET_KEYS_MAX 4
typedef struct gw_ticket_ring {
    int count;
    unsigned char keys[GW_TICKET_KEYS_MAX][GW_TICKET_KEY_SIZE];
} gw_ticket_ring;
int gw_ssl_set_ticket_ring(struct ssl_st *ssl, const gw_ticket_ring *ring);
int gw_ssl_ctx_use_ticket_keys(struct ssl_ctx_st *ctx);

// Page memory for an nghttp2 session (page_memory.c): blocks of a page or more straight from
// mmap, so unwritten pages cost no RSS. `user` is the session's arena; the signatures are those
// of nghttp2_mem's functions. gw_page_arena_trim (only while the session is idle: no stream,
// nothing queued) gives back the pages that hold nothing: all zeros, or a frame buffer's stale
// bytes; returns the bytes given back. Free the arena after the session.
typedef struct gw_page_arena gw_page_arena;
gw_page_arena *gw_page_arena_new(void);
void gw_page_arena_free(gw_page_arena *a);
size_t gw_page_arena_trim(gw_page_arena *a);
// The next block of exactly `size` bytes the session asks for comes from pages of its own
// instead of malloc: for a block the caller knows nghttp2 allocates and never writes.
void gw_page_arena_expect_unwritten(gw_page_arena *a, size_t size);
// The block that request got (NULL before it, or once freed): for the tests.
void *gw_page_arena_unwritten_block(gw_page_arena *a);
void *gw_page_malloc(size_t size, void *user);
void gw_page_free(void *p, void *user);
void *gw_page_calloc(size_t n, size_t size, void *user);
void *gw_page_realloc(void *p, size_t size, void *user);
// The calling thread's cache of malloc blocks (block_cache.c): nghttp2's small blocks (through
// the page arena) and OpenSSL's (after gw_openssl_use_block_cache).
#define GW_BLOCK_SMALL_MAX 1024
void *gw_block_malloc(size_t size);
void gw_block_free(void *p);
// Frees the calling thread's cached blocks; returns the bytes they held.
size_t gw_block_cache_release(void);
// OpenSSL allocates through the block cache from now on: call before its first allocation.
// 1 when installed, 0 when too late or under a sanitizer (whose allocator then sees every block).
int gw_openssl_use_block_cache(void);

// glibc mallopt (malloc.h is not part of Swift's Glibc module).
void gw_malloc_tune(int trim_threshold, int top_pad);
// Free memory back to the kernel now (the calling thread's arena top, every arena's free chunks).
void gw_malloc_release(int trim_threshold, int top_pad);

#endif
