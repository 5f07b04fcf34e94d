#ifndef NFLDB_CLIBCRYPTO_SHIM_H
#define NFLDB_CLIBCRYPTO_SHIM_H
// EVP_Digest (SHA-256), HMAC, PKCS5_PBKDF2_HMAC and CRYPTO_memcmp: none deprecated in OpenSSL 3.
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#endif
