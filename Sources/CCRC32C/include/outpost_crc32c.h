#ifndef OUTPOST_CRC32C_H
#define OUTPOST_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/// Whether this CPU has a CRC-32C instruction (x86-64 SSE4.2 `crc32`, ARMv8 `crc32c*`).
int outpost_crc32c_hardware_available(void);

/// Continues the raw (not pre/post-inverted) CRC-32C state `state` over `count` bytes at `bytes` with the
/// CPU instruction. Only call when `outpost_crc32c_hardware_available()` returned nonzero.
uint32_t outpost_crc32c_hardware_update(uint32_t state, const void *bytes, size_t count);

#endif
