/* bench/crypt floor: the same primitives as a Fernet token — RAND_bytes IV, AES-128-CBC (PKCS7)
   and HMAC-SHA256 over version+timestamp+IV+ciphertext, then verify (CRYPTO_memcmp) and decrypt —
   with contexts reused, and no base64, no framing checks, no allocation per value.
   The cheapest way to call each primitive, as NFLDBFernet does: IVs drawn from RAND_bytes 4 KiB at
   a time (one RAND_bytes call per value cost more than the AES and HMAC together), HMAC from the
   key's precomputed inner/outer SHA-256 states (EVP_MAC_init per value cost more than the hashing).
   Usage: floor N LEN; prints "total_s=…". */
#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/crypto.h>
#include <openssl/core_names.h>
#include <openssl/params.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec / 1e9; }
static double cpu(void) { struct timespec t; clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t); return t.tv_sec + t.tv_nsec / 1e9; }

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
    SHA256_CTX inner, outer, c;
    unsigned char pad[64] = {0};
    memcpy(pad, key, 16);
    for (int i = 0; i < 64; i++) pad[i] ^= 0x36;
    SHA256_Init(&inner); SHA256_Update(&inner, pad, 64);
    for (int i = 0; i < 64; i++) pad[i] ^= 0x36 ^ 0x5c;
    SHA256_Init(&outer); SHA256_Update(&outer, pad, 64);
    unsigned char ivs[4096], h[32];
    int ivoff = sizeof ivs;
    double c0 = cpu();
    double t0 = now();
    for (long i = 0; i < n; i++) {
        unsigned char *t = tokens + (size_t)i * total;
        int w = 0, f = 0;
        t[0] = 0x80; memset(t + 1, 0, 8);
        if (ivoff + 16 > (int)sizeof ivs) { RAND_bytes(ivs, sizeof ivs); ivoff = 0; }
        memcpy(t + 9, ivs + ivoff, 16); ivoff += 16;
        EVP_EncryptInit_ex(enc, NULL, NULL, NULL, t + 9);
        EVP_EncryptUpdate(enc, t + 25, &w, plain, len);
        EVP_EncryptFinal_ex(enc, t + 25 + w, &f);
        c = inner; SHA256_Update(&c, t, 25 + ctlen); SHA256_Final(h, &c);
        c = outer; SHA256_Update(&c, h, 32); SHA256_Final(t + 25 + ctlen, &c);
    }
    double t1 = now();
    long sum = 0;
    for (long i = 0; i < n; i++) {
        unsigned char *t = tokens + (size_t)i * total, tag[32];
        int w = 0, f = 0;
        c = inner; SHA256_Update(&c, t, 25 + ctlen); SHA256_Final(h, &c);
        c = outer; SHA256_Update(&c, h, 32); SHA256_Final(tag, &c);
        if (CRYPTO_memcmp(tag, t + 25 + ctlen, 32) != 0) { fprintf(stderr, "mac mismatch\n"); return 1; }
        EVP_DecryptInit_ex(dec, NULL, NULL, NULL, t + 9);
        EVP_DecryptUpdate(dec, out, &w, t + 25, ctlen);
        if (EVP_DecryptFinal_ex(dec, out + w, &f) != 1) { fprintf(stderr, "padding\n"); return 1; }
        sum += w + f;
    }
    double t2 = now();
    double c2 = cpu();
    if (sum != (long)n * len) { fprintf(stderr, "lost bytes\n"); return 1; }
    printf("count=%ld encrypt_s=%.3f decrypt_s=%.3f total_s=%.3f cpu_s=%.3f\n", n, t1 - t0, t2 - t1, t2 - t0, c2 - c0);
    return 0;
}
