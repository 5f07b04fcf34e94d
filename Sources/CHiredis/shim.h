#ifndef NFLDB_CHIREDIS_SHIM_H
#define NFLDB_CHIREDIS_SHIM_H
// Debian 12's libhiredis-dev 0.14.1 (RESP2 only). Only NFLDBRedis imports this module, and it calls
// the *Argv functions: redisCommand/redisAppendCommand are C variadics that Swift cannot call.
#include <hiredis/hiredis.h>
#endif
