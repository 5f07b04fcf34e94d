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
/* --- end Fernet --- */

#endif
