#ifndef NFLDB_CLIBPQ_SHIM_H
#define NFLDB_CLIBPQ_SHIM_H
#include <libpq-fe.h>
#endif
