import AzureIoTCore

extension TLSConnection {
    /// The next bytes, or `nil` once the server closed the connection (end of stream, reset or TLS close); a time-out
    /// still throws.
    func readUnlessClosed(timeout: Duration) async throws -> [UInt8]? {
        do {
            let bytes = try await self.read(timeout: timeout)
            return bytes.isEmpty ? nil : bytes
        } catch let error as AzureIoTError
            where error.code == .connectionClosed || error.code == .ioFailure || error.code == .tlsFailure
        {
            return nil
        }
    }
}
