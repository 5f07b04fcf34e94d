#ifndef NFLDB_CLIBCRYPTO_SHIM_H
#define NFLDB_CLIBCRYPTO_SHIM_H
#include <openssl/sha.h>
#include <openssl/evp.h>
#endif
