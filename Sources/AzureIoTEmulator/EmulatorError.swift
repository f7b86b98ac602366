/// Why an emulator API call failed.
public struct EmulatorError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What went wrong, to compare on.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private let name: String
        private init(_ name: String) { self.name = name }
        /// The name, as written in code.
        public var description: String { self.name }

        /// No such device or module in the emulated hub.
        public static let unknownIdentity = Code("unknownIdentity")
        /// The device is not connected (or not subscribed to what was asked).
        public static let deviceNotConnected = Code("deviceNotConnected")
        /// The device did not answer in time (IoT Hub's 504 for methods).
        public static let timedOut = Code("timedOut")
        /// The device's cloud-to-device queue is full (IoT Hub's 50 messages, DeviceMaximumQueueDepthExceeded).
        public static let queueFull = Code("queueFull")
        /// The emulator could not start (ports, certificates, configuration).
        public static let startFailed = Code("startFailed")
    }

    /// The kind of failure.
    public var code: Code
    /// What happened, without secrets.
    public var message: String

    /// An error.
    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    /// Errors are equal when their codes are.
    public static func == (lhs: EmulatorError, rhs: EmulatorError) -> Bool { lhs.code == rhs.code }
    /// Hashes what `==` compares.
    public func hash(into hasher: inout Hasher) { hasher.combine(self.code) }
    /// A readable summary that never contains secrets.
    public var description: String { "EmulatorError.\(self.code): \(self.message)" }
}
