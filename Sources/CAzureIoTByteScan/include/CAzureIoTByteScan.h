#ifndef C_AZURE_IOT_BYTE_SCAN_H
#define C_AZURE_IOT_BYTE_SCAN_H

/// Byte scans for the MQTT codec's hot path, sixteen bytes at a time with SSE2 where the CPU has it.

#include <stddef.h>
#include <stdint.h>

/// Scans an MQTT topic name once. Returns a bit set: 1 if it holds `+`, `#` or NUL, 2 if it holds a byte >= 0x80.
int azi_scan_topic_name(const uint8_t *bytes, size_t count);

#endif
