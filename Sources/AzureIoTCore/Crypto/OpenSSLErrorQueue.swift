private import CAzureIoTOpenSSL
private import CAzureIoTShims

/// Reads and clears OpenSSL's thread-local error queue so that failures carry what OpenSSL said.
package enum OpenSSLErrorQueue {
    /// One entry of the queue: the packed code and its text.
    struct Entry {
        var code: UInt
        var text: String
        var reason: Int32 { azi_err_get_reason(code) }
    }

    /// Removes every entry from the queue and returns them oldest first.
    static func drain() -> [Entry] {
        var entries: [Entry] = []
        while true {
            let code = ERR_get_error()
            if code == 0 { break }
            var buffer = [CChar](repeating: 0, count: 256)
            ERR_error_string_n(code, &buffer, buffer.count)
            let text = buffer.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
            entries.append(Entry(code: code, text: text))
        }
        return entries
    }

    /// Drains the queue into the text lines an ``AzureIoTError`` carries.
    package static func drainText() -> [String] { drain().map(\.text) }

    /// Clears anything a previous call left behind.
    package static func clear() { ERR_clear_error() }
}
