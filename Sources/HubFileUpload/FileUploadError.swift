public import AzureIoTCore

/// Why a file upload failed. Switch on ``code``; ``status`` is the HTTP status that ended it, when there was one,
/// and ``underlying`` the transport error. `description` never contains a token or a SAS URI.
public struct FileUploadError: Error, Sendable, CustomStringConvertible {
    /// What went wrong, to compare on.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private let name: String
        private init(_ name: String) { self.name = name }
        /// The name, as written in code.
        public var description: String { self.name }

        /// A configuration value or argument is out of range.
        public static let invalidArgument = Code("invalidArgument")
        /// The file could not be opened or read.
        public static let fileNotReadable = Code("fileNotReadable")
        /// The hub refused to grant a blob SAS URI (`POST /devices/{id}/files`).
        public static let grantRefused = Code("grantRefused")
        /// A block could not be stored after every attempt.
        public static let blockFailed = Code("blockFailed")
        /// Storage refused the block list that commits the blob.
        public static let commitFailed = Code("commitFailed")
        /// The upload worked but the hub refused its notification.
        public static let notificationRefused = Code("notificationRefused")
        /// No answer, or not one that can be read (TLS, connection, time-out).
        public static let transportFailure = Code("transportFailure")
    }

    /// The kind of failure.
    public var code: Code
    /// What happened, without secrets.
    public var message: String
    /// The HTTP status that ended it.
    public var status: Int?
    /// The transport error behind it.
    public var underlying: AzureIoTError?

    /// An error.
    public init(_ code: Code, _ message: String, status: Int? = nil, underlying: AzureIoTError? = nil) {
        self.code = code
        self.message = message
        self.status = status
        self.underlying = underlying
    }

    /// A readable summary that never contains secrets.
    public var description: String {
        "FileUploadError.\(self.code): \(self.message)\(self.status.map { " (HTTP \($0))" } ?? "")"
    }
}
