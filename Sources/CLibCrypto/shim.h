#ifndef NFLDB_CLIBCRYPTO_SHIM_H
#define NFLDB_CLIBCRYPTO_SHIM_H
// EVP_Digest (SHA-256), HMAC, PKCS5_PBKDF2_HMAC and CRYPTO_memcmp for SCRAM and checksums;
// sha.h for the one-shot SHA1() that NFLDBRedis uses for script digests.
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>
#endif
