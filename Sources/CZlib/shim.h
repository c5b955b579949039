// Thin shim over the system zlib (Debian zlib1g-dev). Only OutpostCore imports it.
// deflateInit2/inflateInit2 are C macros, which Swift cannot call, so they are re-exposed here.
#ifndef OUTPOST_CZLIB_SHIM_H
#define OUTPOST_CZLIB_SHIM_H
#include <zlib.h>

static inline int outpost_deflateInit2(z_streamp stream, int level, int windowBits, int memLevel) {
    return deflateInit2(stream, level, Z_DEFLATED, windowBits, memLevel, Z_DEFAULT_STRATEGY);
}

static inline int outpost_inflateInit2(z_streamp stream, int windowBits) {
    return inflateInit2(stream, windowBits);
}
#endif
