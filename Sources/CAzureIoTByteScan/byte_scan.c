#include "CAzureIoTByteScan.h"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

int azi_scan_topic_name(const uint8_t *bytes, size_t count) {
    int forbidden = 0;
    int high = 0;
    size_t index = 0;
#if defined(__SSE2__)
    if (count >= 16) {
        const __m128i plus = _mm_set1_epi8('+');
        const __m128i hash = _mm_set1_epi8('#');
        const __m128i zero = _mm_setzero_si128();
        __m128i found = zero;
        __m128i bits = zero;
        for (; index + 16 <= count; index += 16) {
            __m128i block = _mm_loadu_si128((const __m128i *)(bytes + index));
            bits = _mm_or_si128(bits, block);
            found = _mm_or_si128(found, _mm_or_si128(_mm_cmpeq_epi8(block, zero),
                                                      _mm_or_si128(_mm_cmpeq_epi8(block, plus), _mm_cmpeq_epi8(block, hash))));
        }
        if (index < count) {
            // The last sixteen bytes, overlapping ones already seen: no byte-by-byte tail.
            __m128i block = _mm_loadu_si128((const __m128i *)(bytes + count - 16));
            bits = _mm_or_si128(bits, block);
            found = _mm_or_si128(found, _mm_or_si128(_mm_cmpeq_epi8(block, zero),
                                                      _mm_or_si128(_mm_cmpeq_epi8(block, plus), _mm_cmpeq_epi8(block, hash))));
        }
        forbidden = _mm_movemask_epi8(found) != 0;
        high = _mm_movemask_epi8(bits) != 0;
        return forbidden | (high << 1);
    }
#endif
    for (; index < count; index++) {
        uint8_t byte = bytes[index];
        forbidden |= byte == 0 || byte == '+' || byte == '#';
        high |= byte >= 0x80;
    }
    return forbidden | (high << 1);
}
