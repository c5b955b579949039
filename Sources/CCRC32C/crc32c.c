// CRC-32C with the CPU's own instruction. Swift cannot emit SSE4.2/ARMv8-CRC intrinsics behind a runtime
// CPU check, so this file does only that; the portable table code stays in OutpostCore/CRC32C.swift.
#include "outpost_crc32c.h"
#include <string.h>

#if defined(__x86_64__)
#include <cpuid.h>

int outpost_crc32c_hardware_available(void) {
    unsigned int eax, ebx, ecx, edx;
    if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx)) return 0;
    return (ecx & bit_SSE4_2) != 0;
}

__attribute__((target("sse4.2")))
uint32_t outpost_crc32c_hardware_update(uint32_t state, const void *bytes, size_t count) {
    const unsigned char *pointer = bytes;
    uint64_t wide = state;
    // memcpy loads: no alignment assumptions, compiled to plain moves.
    while (count >= 8) {
        uint64_t word;
        memcpy(&word, pointer, 8);
        wide = __builtin_ia32_crc32di(wide, word);
        pointer += 8;
        count -= 8;
    }
    uint32_t narrow = (uint32_t)wide;
    while (count > 0) {
        narrow = __builtin_ia32_crc32qi(narrow, *pointer);
        pointer += 1;
        count -= 1;
    }
    return narrow;
}

#elif defined(__aarch64__)
#include <sys/auxv.h>
#ifndef HWCAP_CRC32
#define HWCAP_CRC32 (1 << 7)
#endif

int outpost_crc32c_hardware_available(void) {
    return (getauxval(AT_HWCAP) & HWCAP_CRC32) != 0;
}

__attribute__((target("crc")))
uint32_t outpost_crc32c_hardware_update(uint32_t state, const void *bytes, size_t count) {
    const unsigned char *pointer = bytes;
    while (count >= 8) {
        uint64_t word;
        memcpy(&word, pointer, 8);
        state = __builtin_arm_crc32cd(state, word);
        pointer += 8;
        count -= 8;
    }
    while (count > 0) {
        state = __builtin_arm_crc32cb(state, *pointer);
        pointer += 1;
        count -= 1;
    }
    return state;
}

#else
int outpost_crc32c_hardware_available(void) { return 0; }
uint32_t outpost_crc32c_hardware_update(uint32_t state, const void *bytes, size_t count) {
    (void)bytes;
    (void)count;
    return state;
}
#endif
