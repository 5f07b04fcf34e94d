#ifndef NFLDB_CLIBSSL_SHIM_H
#define NFLDB_CLIBSSL_SHIM_H
// OpenSSL's libssl for reading the TLS session libpq opened (PQsslStruct("OpenSSL") is an SSL*):
// the peer certificate's notAfter for the tls_certificate check, and a verification probe that
// tells an unknown CA from an expired certificate when libpq only says "certificate verify failed".
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/asn1.h>
#endif
