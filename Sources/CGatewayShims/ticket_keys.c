// Session ticket keys, in C because the OpenSSL 3 ticket callback needs OSSL_PARAM arrays.
// Generated keys are carried from snapshot to snapshot, so a reload keeps tickets valid, and a
// fleet shares keys through `ticket_key_file`. Resumption across hosts is still refused by the
// per-policy session id context.
#include "CGatewayShims.h"
#include <openssl/ssl.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/core_names.h>
#include <openssl/params.h>
#include <pthread.h>
#include <string.h>

// The ring travels with each SSL (ex data), not in a global: a connection seals and opens
// tickets with the keys of the snapshot (or rotation) it was accepted under, and no lock is
// taken per ticket. The ring is owned by Swift (TicketKeyRing), which the connection keeps alive.
static int ring_index = -1;
// AES-256-CBC fetched once from the default provider: EVP_aes_256_cbc() is a legacy object, and
// OpenSSL 3.0 fetches (and frees) its provider implementation in every EncryptInit/DecryptInit
// (a method-store lookup under a lock, name comparisons, an allocation) — twice per resumed handshake.
static EVP_CIPHER *ticket_cipher;
static pthread_once_t ring_once = PTHREAD_ONCE_INIT;
static void make_ring_index(void) {
    ring_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
    ticket_cipher = EVP_CIPHER_fetch(NULL, "AES-256-CBC", NULL);
}

int gw_ssl_set_ticket_ring(SSL *ssl, const gw_ticket_ring *ring) {
    pthread_once(&ring_once, make_ring_index);
    return SSL_set_ex_data(ssl, ring_index, (void *)ring);
}

// Key layout (as nginx's 80-byte keys): 16-byte name, 32-byte HMAC-SHA256 secret, 32-byte AES-256 key.
static int ticket_cb(SSL *s, unsigned char key_name[16], unsigned char *iv, EVP_CIPHER_CTX *cipher,
                     EVP_MAC_CTX *mac, int enc) {
    pthread_once(&ring_once, make_ring_index);
    const gw_ticket_ring *ring = SSL_get_ex_data(s, ring_index);
    if (ring == NULL || ticket_cipher == NULL) return 0;
    unsigned char key[GW_TICKET_KEY_SIZE];
    int found = -1;
    if (enc) {
        if (ring->count > 0) { memcpy(key, ring->keys[0], sizeof key); found = 0; }
    } else {
        for (int i = 0; i < ring->count; i++) {
            if (memcmp(ring->keys[i], key_name, 16) == 0) { memcpy(key, ring->keys[i], sizeof key); found = i; break; }
        }
    }
    if (found < 0) return 0;   // encrypt: issue no ticket; decrypt: unknown key, full handshake

    OSSL_PARAM params[2] = { OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0),
                             OSSL_PARAM_construct_end() };
    int ok;
    if (enc) {
        memcpy(key_name, key, 16);
        ok = RAND_bytes(iv, 16) > 0 && EVP_EncryptInit_ex2(cipher, ticket_cipher, key + 48, iv, NULL);
    } else {
        ok = EVP_DecryptInit_ex2(cipher, ticket_cipher, key + 48, iv, NULL);
    }
    ok = ok && EVP_MAC_init(mac, key + 16, 32, params);
    OPENSSL_cleanse(key, sizeof key);
    if (!ok) return -1;
    // Decrypting, 2 asks OpenSSL for a fresh ticket on this resumed connection. Always: TLS 1.3
    // clients (wrk, browsers) treat a ticket as single-use, so without a new one every other
    // connection would fall back to a full handshake (measured with scripts/bench hs_resumed).
    return enc ? 1 : 2;
}

int gw_ssl_ctx_use_ticket_keys(SSL_CTX *ctx) { return (int)SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, ticket_cb); }
