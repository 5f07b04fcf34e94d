/* bench/crypt floor: the same primitives as a Fernet token — RAND_bytes IV, AES-128-CBC (PKCS7)
   and HMAC-SHA256 over version+timestamp+IV+ciphertext, then verify (CRYPTO_memcmp) and decrypt —
   with contexts reused, and no base64, no framing checks, no allocation per value.
   Usage: floor N LEN; prints "total_s=…". */
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/crypto.h>
#include <openssl/core_names.h>
#include <openssl/params.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec / 1e9; }

int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : 1000000;
    int len = argc > 2 ? atoi(argv[2]) : 20;
    unsigned char key[32], plain[4096], out[4096];
    RAND_bytes(key, 32);
    memset(plain, 'v', len);
    int ctlen = (len / 16 + 1) * 16, total = 25 + ctlen + 32;
    unsigned char *tokens = malloc((size_t)n * total);
    EVP_CIPHER_CTX *enc = EVP_CIPHER_CTX_new(), *dec = EVP_CIPHER_CTX_new();
    EVP_EncryptInit_ex(enc, EVP_aes_128_cbc(), NULL, key + 16, NULL);
    EVP_DecryptInit_ex(dec, EVP_aes_128_cbc(), NULL, key + 16, NULL);
    EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    EVP_MAC_CTX *m = EVP_MAC_CTX_new(mac);
    OSSL_PARAM params[2] = { OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, "SHA256", 0), OSSL_PARAM_construct_end() };
    EVP_MAC_init(m, key, 16, params);
    double t0 = now();
    for (long i = 0; i < n; i++) {
        unsigned char *t = tokens + (size_t)i * total;
        int w = 0, f = 0; size_t ml = 0;
        t[0] = 0x80; memset(t + 1, 0, 8);
        RAND_bytes(t + 9, 16);
        EVP_EncryptInit_ex(enc, NULL, NULL, NULL, t + 9);
        EVP_EncryptUpdate(enc, t + 25, &w, plain, len);
        EVP_EncryptFinal_ex(enc, t + 25 + w, &f);
        EVP_MAC_init(m, NULL, 0, NULL);
        EVP_MAC_update(m, t, 25 + ctlen);
        EVP_MAC_final(m, t + 25 + ctlen, &ml, 32);
    }
    double t1 = now();
    long sum = 0;
    for (long i = 0; i < n; i++) {
        unsigned char *t = tokens + (size_t)i * total, tag[32];
        int w = 0, f = 0; size_t ml = 0;
        EVP_MAC_init(m, NULL, 0, NULL);
        EVP_MAC_update(m, t, 25 + ctlen);
        EVP_MAC_final(m, tag, &ml, 32);
        if (CRYPTO_memcmp(tag, t + 25 + ctlen, 32) != 0) { fprintf(stderr, "mac mismatch\n"); return 1; }
        EVP_DecryptInit_ex(dec, NULL, NULL, NULL, t + 9);
        EVP_DecryptUpdate(dec, out, &w, t + 25, ctlen);
        if (EVP_DecryptFinal_ex(dec, out + w, &f) != 1) { fprintf(stderr, "padding\n"); return 1; }
        sum += w + f;
    }
    double t2 = now();
    if (sum != (long)n * len) { fprintf(stderr, "lost bytes\n"); return 1; }
    printf("count=%ld encrypt_s=%.3f decrypt_s=%.3f total_s=%.3f\n", n, t1 - t0, t2 - t1, t2 - t0);
    return 0;
}
