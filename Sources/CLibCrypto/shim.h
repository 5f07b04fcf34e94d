#ifndef NFLDB_CLIBCRYPTO_SHIM_H
#define NFLDB_CLIBCRYPTO_SHIM_H
// EVP_Digest (SHA-256), HMAC, PKCS5_PBKDF2_HMAC and CRYPTO_memcmp for SCRAM and checksums;
// sha.h for the one-shot SHA1() that NFLDBRedis uses for script digests.
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

/* --- Fernet (NFLDBFernet): AES-128-CBC, HMAC-SHA256, random bytes, constant-time compare --- */
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/crypto.h>
#include <openssl/core_names.h>
#include <openssl/params.h>
#include <string.h>

/* An HMAC-SHA256 context keyed once; re-initialise it per message with
   EVP_MAC_init(ctx, NULL, 0, NULL), which keeps the key. OSSL_PARAM arrays are awkward from
   Swift, hence this helper. Returns NULL on failure. */
static inline EVP_MAC_CTX *nfldb_hmac_sha256_new(const unsigned char *key, size_t key_length) {
    EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    if (mac == NULL) return NULL;
    EVP_MAC_CTX *ctx = EVP_MAC_CTX_new(mac);
    EVP_MAC_free(mac);
    if (ctx == NULL) return NULL;
    OSSL_PARAM params[2];
    params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0);
    params[1] = OSSL_PARAM_construct_end();
    if (EVP_MAC_init(ctx, key, key_length, params) != 1) {
        EVP_MAC_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}
/* HMAC-SHA256 with the key's inner and outer SHA-256 states computed once: per message only the
   message is hashed (two SHA256_CTX copies instead of EVP_MAC_init's digest-context duplication,
   which costs more than the hashing for a 100-byte token). SHA256_Init/Update/Final are
   deprecated in OpenSSL 3 but kept, and use the same assembly (SHA-NI where present); the pragmas
   keep the deprecation to this file. Keys up to 64 bytes (Fernet's signing key is 16). */
typedef struct { SHA256_CTX inner; SHA256_CTX outer; } nfldb_hmac_sha256_state;

#pragma clang diagnostic push
#pragma clang diagnostic ignored "-Wdeprecated-declarations"
static inline int nfldb_hmac_sha256_prepare(nfldb_hmac_sha256_state *state, const unsigned char *key, size_t key_length) {
    if (key_length > 64) return 0;
    unsigned char pad[64];
    memset(pad, 0, sizeof pad);
    memcpy(pad, key, key_length);
    for (int i = 0; i < 64; i++) pad[i] ^= 0x36;
    int ok = SHA256_Init(&state->inner) && SHA256_Update(&state->inner, pad, 64);
    for (int i = 0; i < 64; i++) pad[i] ^= 0x36 ^ 0x5c;
    ok = ok && SHA256_Init(&state->outer) && SHA256_Update(&state->outer, pad, 64);
    OPENSSL_cleanse(pad, sizeof pad);
    return ok;
}

static inline int nfldb_hmac_sha256(const nfldb_hmac_sha256_state *state, const unsigned char *data, size_t length, unsigned char *out) {
    SHA256_CTX ctx = state->inner;
    unsigned char inner[32];
    int ok = SHA256_Update(&ctx, data, length) && SHA256_Final(inner, &ctx);
    ctx = state->outer;
    ok = ok && SHA256_Update(&ctx, inner, 32) && SHA256_Final(out, &ctx);
    /* No OPENSSL_cleanse of ctx: after SHA256_Final it holds the tag (public) and a block that
       SHA256_Final has already wiped; the keyed states live only in *state. */
    return ok;
}
#pragma clang diagnostic pop
/* --- end Fernet --- */

#endif
