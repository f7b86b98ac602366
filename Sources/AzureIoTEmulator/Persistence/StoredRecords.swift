import AzureIoTCore
import Foundation

/// The JSON forms the store keeps: identities (credentials, registry fields, twin), cloud-to-device messages,
/// partition events and DPS registrations. Reading is lenient about what it does not know and returns `nil` for a
/// record that lacks a required field.
enum StoredRecords {
    private static func string(_ value: String?) -> JSONValue { value.map(JSONValue.string) ?? .null }
    private static func number(_ value: Int64) -> JSONValue { .number(JSONNumber(value)) }
    private static func milliseconds(_ date: Date) -> JSONValue { .number(JSONNumber(date.unixMilliseconds)) }
    private static func date(_ value: JSONValue?) -> Date? {
        value?.int64Value.map { Date(unixMilliseconds: $0) }
    }
    private static func int(_ value: JSONValue?) -> Int? { value?.int64Value.flatMap { Int(exactly: $0) } }
    private static func strings(_ value: JSONValue?) -> [String: String] {
        var result: [String: String] = [:]
        for (key, value) in value?.objectValue ?? [:] { if let text = value.stringValue { result[key] = text } }
        return result
    }

    // MARK: - Identities

    static func identity(_ identity: EmulatedHub.Identity) -> JSONValue {
        let registry = identity.registry
        return [
            "primaryKey": string(identity.key?.base64EncodedSecret),
            "secondaryKey": string(identity.secondaryKey?.base64EncodedSecret),
            "thumbprint": string(identity.thumbprint),
            "secondaryThumbprint": string(identity.secondaryThumbprint),
            "certificateAuthorities": .array(identity.certificateAuthorities.map { .string($0.pem) }),
            "authentication": .string(identity.authentication.rawValue),
            "enabled": .bool(registry.enabled),
            "statusReason": string(registry.statusReason),
            "generationId": .string(registry.generationId),
            "revision": number(Int64(registry.revision)),
            "iotEdge": .bool(registry.iotEdge),
            "managedBy": string(registry.managedBy),
            "tags": registry.tags,
            "twinVersion": number(Int64(registry.twinVersion)),
            "statusUpdatedTime": milliseconds(registry.statusUpdatedTime),
            "desired": identity.twin.desired,
            "desiredVersion": number(Int64(identity.twin.desiredVersion)),
            "reported": identity.twin.reported,
            "reportedVersion": number(Int64(identity.twin.reportedVersion)),
        ]
    }

    static func identity(_ record: JSONValue) -> EmulatedHub.Identity? {
        guard let generationId = record["generationId"]?.stringValue,
            let kind = record["authentication"]?.stringValue.flatMap(EmulatedHub.AuthenticationKind.init(rawValue:))
        else { return nil }
        func key(_ field: String) -> SymmetricKey? {
            record[field]?.stringValue.flatMap { try? SymmetricKey(base64: $0) }
        }
        var authorities: [X509Certificate] = []
        if case .array(let pems)? = record["certificateAuthorities"] {
            for pem in pems.compactMap(\.stringValue) {
                authorities += (try? X509Certificate.certificates(fromPEM: pem)) ?? []
            }
        }
        var registry = EmulatedHub.RegistryFields(generationId: generationId)
        if case .bool(let enabled)? = record["enabled"] { registry.enabled = enabled }
        registry.statusReason = record["statusReason"]?.stringValue
        registry.revision = int(record["revision"]) ?? 1
        if case .bool(let edge)? = record["iotEdge"] { registry.iotEdge = edge }
        registry.managedBy = record["managedBy"]?.stringValue
        registry.tags = record["tags"] ?? .object([:])
        registry.twinVersion = int(record["twinVersion"]) ?? 1
        registry.statusUpdatedTime = date(record["statusUpdatedTime"]) ?? Date()
        var identity = EmulatedHub.Identity(
            key: key("primaryKey"),
            thumbprint: record["thumbprint"]?.stringValue,
            certificateAuthorities: authorities,
            authentication: kind,
            twin: TwinRecord(
                desired: record["desired"] ?? .object([:]),
                desiredVersion: int(record["desiredVersion"]) ?? 1,
                reported: record["reported"] ?? .object([:]),
                reportedVersion: int(record["reportedVersion"]) ?? 1
            ),
            registry: registry
        )
        identity.secondaryKey = key("secondaryKey")
        identity.secondaryThumbprint = record["secondaryThumbprint"]?.stringValue
        return identity
    }

    // MARK: - Cloud to device

    static func cloudToDevice(_ record: CloudToDeviceRecord) -> JSONValue {
        [
            "messageId": .string(record.messageId),
            "deviceId": .string(record.deviceId),
            "body": .string(Base64.encode(record.body)),
            "properties": .object(record.properties.mapValues(JSONValue.string)),
            "state": .string(record.state.rawValue),
            "deliveryCount": number(Int64(record.deliveryCount)),
            "correlationId": string(record.correlationId),
            "contentType": string(record.contentType),
            "contentEncoding": string(record.contentEncoding),
            "expiresAt": record.expiresAt.map(milliseconds) ?? .null,
            "acknowledgement": string(record.acknowledgement),
            "enqueuedAt": milliseconds(record.enqueuedAt),
        ]
    }

    static func cloudToDevice(_ text: String) -> CloudToDeviceRecord? {
        guard let record = try? JSONValue(parsing: Array(text.utf8)), let messageId = record["messageId"]?.stringValue,
            let deviceId = record["deviceId"]?.stringValue,
            let body = record["body"]?.stringValue.flatMap({ try? Base64.decode($0, what: "a stored body") }),
            let state = record["state"]?.stringValue.flatMap(CloudToDeviceState.init(rawValue:))
        else { return nil }
        return CloudToDeviceRecord(
            messageId: messageId,
            deviceId: deviceId,
            body: body,
            properties: strings(record["properties"]),
            state: state,
            deliveryCount: int(record["deliveryCount"]) ?? 0,
            correlationId: record["correlationId"]?.stringValue,
            contentType: record["contentType"]?.stringValue,
            contentEncoding: record["contentEncoding"]?.stringValue,
            expiresAt: date(record["expiresAt"]),
            acknowledgement: record["acknowledgement"]?.stringValue,
            enqueuedAt: date(record["enqueuedAt"]) ?? Date()
        )
    }

    // MARK: - Events

    static func event(_ event: PartitionEvent) -> JSONValue {
        let telemetry = event.telemetry
        return [
            "sequenceNumber": number(event.sequenceNumber),
            "offset": number(event.offset),
            "enqueuedTime": milliseconds(event.enqueuedTime),
            "deviceId": .string(telemetry.deviceId),
            "moduleId": string(telemetry.moduleId),
            "transport": .string(telemetry.transport.rawValue),
            "overWebSockets": .bool(telemetry.overWebSockets),
            "body": .string(Base64.encode(telemetry.body)),
            "contentType": string(telemetry.contentType),
            "contentEncoding": string(telemetry.contentEncoding),
            "messageId": string(telemetry.messageId),
            "correlationId": string(telemetry.correlationId),
            "userId": string(telemetry.userId),
            "systemProperties": .object(telemetry.systemProperties.mapValues(JSONValue.string)),
            "properties": .object(telemetry.properties.mapValues(JSONValue.string)),
            "receivedAt": milliseconds(telemetry.receivedAt),
        ]
    }

    static func event(_ text: String) -> PartitionEvent? {
        guard let record = try? JSONValue(parsing: Array(text.utf8)),
            let sequence = record["sequenceNumber"]?.int64Value, let offset = record["offset"]?.int64Value,
            let enqueued = date(record["enqueuedTime"]), let deviceId = record["deviceId"]?.stringValue,
            let transport = record["transport"]?.stringValue.flatMap(ReceivedTelemetry.Transport.init(rawValue:)),
            let body = record["body"]?.stringValue.flatMap({ try? Base64.decode($0, what: "a stored body") })
        else { return nil }
        var overWebSockets = false
        if case .bool(let flag)? = record["overWebSockets"] { overWebSockets = flag }
        return PartitionEvent(
            sequenceNumber: sequence,
            offset: offset,
            enqueuedTime: enqueued,
            telemetry: ReceivedTelemetry(
                deviceId: deviceId,
                moduleId: record["moduleId"]?.stringValue,
                transport: transport,
                overWebSockets: overWebSockets,
                body: body,
                contentType: record["contentType"]?.stringValue,
                contentEncoding: record["contentEncoding"]?.stringValue,
                messageId: record["messageId"]?.stringValue,
                correlationId: record["correlationId"]?.stringValue,
                userId: record["userId"]?.stringValue,
                systemProperties: strings(record["systemProperties"]),
                properties: strings(record["properties"]),
                receivedAt: date(record["receivedAt"]) ?? enqueued
            )
        )
    }

    // MARK: - Registrations

    static func registration(_ record: ProvisioningRecord) -> JSONValue {
        [
            "registrationId": .string(record.registrationId),
            "deviceId": .string(record.deviceId),
            "enrollmentGroup": string(record.enrollmentGroup),
            "attestation": .string(record.attestation.rawValue),
            "status": .string(record.status),
            "payload": record.payload ?? .null,
        ]
    }

    static func registration(_ text: String) -> ProvisioningRecord? {
        guard let record = try? JSONValue(parsing: Array(text.utf8)),
            let registrationId = record["registrationId"]?.stringValue, let deviceId = record["deviceId"]?.stringValue,
            let attestation = record["attestation"]?.stringValue.flatMap(
                ProvisioningRecord.Attestation.init(rawValue:)
            ),
            let status = record["status"]?.stringValue
        else { return nil }
        let payload = record["payload"]
        return ProvisioningRecord(
            registrationId: registrationId,
            deviceId: deviceId,
            enrollmentGroup: record["enrollmentGroup"]?.stringValue,
            attestation: attestation,
            status: status,
            payload: payload == .null ? nil : payload
        )
    }
}
