// Session ticket keys for every listener of the process, in C because the OpenSSL 3 ticket
// callback needs OSSL_PARAM arrays. One key set per process: a reload or a new listener
// context keeps tickets valid, and a fleet shares keys through `ticket_key_file`. Resumption
// across hosts is still refused by the per-policy session id context.
#include "CGatewayShims.h"
#include <openssl/ssl.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/core_names.h>
#include <openssl/params.h>
#include <pthread.h>
#include <string.h>

#define GW_TICKET_KEYS_MAX 4

static pthread_mutex_t keys_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned char keys[GW_TICKET_KEYS_MAX][GW_TICKET_KEY_SIZE];
static int key_count = 0;

int gw_ticket_keys_set(const unsigned char *bytes, int count) {
    if (count < 1 || count > GW_TICKET_KEYS_MAX) return 0;
    pthread_mutex_lock(&keys_lock);
    memcpy(keys, bytes, (size_t)count * GW_TICKET_KEY_SIZE);
    key_count = count;
    pthread_mutex_unlock(&keys_lock);
    return 1;
}

// Key layout (as nginx's 80-byte keys): 16-byte name, 32-byte HMAC-SHA256 secret, 32-byte AES-256 key.
static int ticket_cb(SSL *s, unsigned char key_name[16], unsigned char *iv, EVP_CIPHER_CTX *cipher,
                     EVP_MAC_CTX *mac, int enc) {
    (void)s;
    unsigned char key[GW_TICKET_KEY_SIZE];
    int found = -1;
    pthread_mutex_lock(&keys_lock);
    if (enc) {
        if (key_count > 0) { memcpy(key, keys[0], sizeof key); found = 0; }
    } else {
        for (int i = 0; i < key_count; i++) {
            if (memcmp(keys[i], key_name, 16) == 0) { memcpy(key, keys[i], sizeof key); found = i; break; }
        }
    }
    pthread_mutex_unlock(&keys_lock);
    if (found < 0) return 0;   // encrypt: issue no ticket; decrypt: unknown key, full handshake

    OSSL_PARAM params[2] = { OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0),
                             OSSL_PARAM_construct_end() };
    int ok;
    if (enc) {
        memcpy(key_name, key, 16);
        ok = RAND_bytes(iv, 16) > 0 && EVP_EncryptInit_ex(cipher, EVP_aes_256_cbc(), NULL, key + 48, iv);
    } else {
        ok = EVP_DecryptInit_ex(cipher, EVP_aes_256_cbc(), NULL, key + 48, iv);
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
