internal import CAzureIoTShims

/// Gives freed heap back to the system (glibc's `malloc_trim`), for servers whose load just fell away.
package enum HeapTrim {
    package static func returnFreedMemory() {
        _ = azi_malloc_trim()
    }
}
