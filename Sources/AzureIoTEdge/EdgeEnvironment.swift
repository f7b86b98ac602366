import Foundation

/// What IoT Edge tells a module about itself: the variables edgeAgent sets when it starts the module's container
/// (`IOTEDGE_IOTHUBHOSTNAME`, `IOTEDGE_GATEWAYHOSTNAME`, `IOTEDGE_DEVICEID`, `IOTEDGE_MODULEID`,
/// `IOTEDGE_MODULEGENERATIONID`, `IOTEDGE_WORKLOADURI`, `IOTEDGE_APIVERSION`, `IOTEDGE_AUTHSCHEME`).
///
/// `azure-iot emulator --edge-device …` prints these for each module it serves, so a module runs against the
/// emulator with the environment it would get on an Edge device.
public struct EdgeEnvironment: Sendable, Hashable {
    /// Where the workload API listens.
    public enum WorkloadURI: Sendable, Hashable, CustomStringConvertible {
        /// A unix socket (`unix:///var/run/iotedge/workload.sock`), IoT Edge's default.
        case unixSocket(path: String)
        /// An HTTP listener (`http://host:port`), which Azure's C SDK also accepts.
        case http(baseURL: String)

        /// Parses `unix:///path` or `http://host:port[/]`. Throws ``EdgeError/Code/invalidEnvironment``.
        public init(parsing text: String) throws(EdgeError) {
            if text.hasPrefix("unix://") {
                let path = String(text.dropFirst("unix://".count))
                guard path.hasPrefix("/"), path.utf8.count < 108, !path.contains("\0") else {
                    throw EdgeError(
                        .invalidEnvironment,
                        "IOTEDGE_WORKLOADURI must name an absolute socket path of at most 107 bytes (unix:///…)"
                    )
                }
                self = .unixSocket(path: path)
            } else if text.hasPrefix("http://") {
                var base = text
                while base.hasSuffix("/") { base.removeLast() }
                guard base.count > "http://".count, !base.contains(" ") else {
                    throw EdgeError(.invalidEnvironment, "IOTEDGE_WORKLOADURI '\(text)' names no host")
                }
                self = .http(baseURL: base)
            } else {
                throw EdgeError(
                    .invalidEnvironment,
                    "IOTEDGE_WORKLOADURI '\(text.prefix(100))' is neither unix:///path nor http://host:port"
                )
            }
        }

        /// The URI as IoT Edge writes it.
        public var description: String {
            switch self {
            case .unixSocket(let path): "unix://\(path)"
            case .http(let baseURL): baseURL
            }
        }
    }

    /// The IoT Hub host name: the tokens' audience and the MQTT user name's host (`IOTEDGE_IOTHUBHOSTNAME`).
    public var hubHostName: String
    /// The Edge device's host name, where edgeHub listens and the module connects (`IOTEDGE_GATEWAYHOSTNAME`).
    public var gatewayHostName: String
    /// The Edge device's id (`IOTEDGE_DEVICEID`).
    public var deviceId: String
    /// The module's id (`IOTEDGE_MODULEID`).
    public var moduleId: String
    /// The module identity's generation id, which the workload API checks when it signs
    /// (`IOTEDGE_MODULEGENERATIONID`).
    public var generationId: String
    /// The workload API (`IOTEDGE_WORKLOADURI`).
    public var workloadURI: WorkloadURI
    /// The workload API version (`IOTEDGE_APIVERSION`); Azure's C SDK uses `2018-06-28` when it is absent.
    public var apiVersion: String

    /// The API version used when `IOTEDGE_APIVERSION` is not set (Azure's C SDK's fixed one).
    public static let defaultAPIVersion = "2018-06-28"

    /// An environment from its parts.
    public init(
        hubHostName: String,
        gatewayHostName: String,
        deviceId: String,
        moduleId: String,
        generationId: String,
        workloadURI: WorkloadURI,
        apiVersion: String = EdgeEnvironment.defaultAPIVersion
    ) {
        self.hubHostName = hubHostName
        self.gatewayHostName = gatewayHostName
        self.deviceId = deviceId
        self.moduleId = moduleId
        self.generationId = generationId
        self.workloadURI = workloadURI
        self.apiVersion = apiVersion
    }

    /// Reads the `IOTEDGE_*` variables from the process's environment; see ``init(variables:)``.
    public init() throws(EdgeError) {
        try self.init(variables: ProcessInfo.processInfo.environment)
    }

    /// Reads the `IOTEDGE_*` variables from `variables`. Throws
    /// ``EdgeError/Code/missingEnvironment`` naming the first one missing, ``EdgeError/Code/invalidEnvironment``
    /// for an unusable value, and ``EdgeError/Code/unsupportedAuthScheme`` when `IOTEDGE_AUTHSCHEME` is set to
    /// anything but `sasToken`.
    public init(variables: [String: String]) throws(EdgeError) {
        func value(_ name: String) throws(EdgeError) -> String {
            guard let value = variables[name] else {
                throw EdgeError(.missingEnvironment, "\(name) is not set: is this process an IoT Edge module?")
            }
            let trimmed = value.trimmingCharacters(in: .whitespaces)
            guard !trimmed.isEmpty, trimmed.utf8.count <= 1024 else {
                throw EdgeError(.invalidEnvironment, "\(name) is empty or longer than 1024 bytes")
            }
            return trimmed
        }
        if let scheme = variables["IOTEDGE_AUTHSCHEME"], scheme.trimmingCharacters(in: .whitespaces) != "sasToken" {
            throw EdgeError(
                .unsupportedAuthScheme,
                "IOTEDGE_AUTHSCHEME is '\(scheme.prefix(40))'; IoT Edge modules authenticate with 'sasToken'"
            )
        }
        let apiVersion = variables["IOTEDGE_APIVERSION"].map { $0.trimmingCharacters(in: .whitespaces) }
        self.init(
            hubHostName: try value("IOTEDGE_IOTHUBHOSTNAME"),
            gatewayHostName: try value("IOTEDGE_GATEWAYHOSTNAME"),
            deviceId: try value("IOTEDGE_DEVICEID"),
            moduleId: try value("IOTEDGE_MODULEID"),
            generationId: try value("IOTEDGE_MODULEGENERATIONID"),
            workloadURI: try WorkloadURI(parsing: try value("IOTEDGE_WORKLOADURI")),
            apiVersion: apiVersion.flatMap { $0.isEmpty ? nil : $0 } ?? Self.defaultAPIVersion
        )
    }

    /// The variables as edgeAgent sets them (the inverse of ``init(variables:)``).
    public var variables: [String: String] {
        [
            "IOTEDGE_IOTHUBHOSTNAME": self.hubHostName,
            "IOTEDGE_GATEWAYHOSTNAME": self.gatewayHostName,
            "IOTEDGE_DEVICEID": self.deviceId,
            "IOTEDGE_MODULEID": self.moduleId,
            "IOTEDGE_MODULEGENERATIONID": self.generationId,
            "IOTEDGE_WORKLOADURI": self.workloadURI.description,
            "IOTEDGE_APIVERSION": self.apiVersion,
            "IOTEDGE_AUTHSCHEME": "sasToken",
        ]
    }
}
