import AzureIoTCore
import Foundation

/// An identity as the service API asks for it: created or updated with `PUT /devices/{id}` or
/// `PUT /devices/{id}/modules/{m}`.
struct IdentitySpecification {
    var name: IdentityName
    var enabled = true
    var statusReason: String?
    var authentication: EmulatedHub.AuthenticationKind = .sas
    /// Base64 keys; generated when absent (SAS identities only).
    var primaryKey: String?
    var secondaryKey: String?
    /// Upper-case hex thumbprints (self-signed X.509 identities).
    var primaryThumbprint: String?
    var secondaryThumbprint: String?
    var iotEdge = false
    var managedBy: String?
}

/// An `If-Match` condition: any existing entity (`*`, quoted or not) or one ETag.
enum EntityTagCondition: Equatable {
    case any
    case tag(String)

    /// Reads an `If-Match` value: surrounding quotes and a weak `W/` prefix are dropped, so `"*"` (what the Python
    /// service SDK sends when the caller gave no ETag) is the wildcard.
    init?(header: String?) {
        guard var value = header?.trimmingCharacters(in: .whitespaces), !value.isEmpty else { return nil }
        if value.hasPrefix("W/") { value.removeFirst(2) }
        if value.count >= 2, value.hasPrefix("\""), value.hasSuffix("\"") {
            value = String(value.dropFirst().dropLast())
        }
        self = value == "*" ? .any : .tag(value)
    }

    func matches(_ etag: String) -> Bool {
        switch self {
        case .any: return true
        case .tag(let tag): return tag == etag
        }
    }
}

/// Why a registry operation failed; the service API maps each to IoT Hub's status and error code.
enum RegistryFailure: Error, Equatable {
    case deviceNotFound(String)
    case moduleNotFound(IdentityName)
    case alreadyExists(IdentityName)
    case preconditionFailed(String)
    case invalid(String)
}

/// A registry entry with what the hub knows of it right now, for the service API to render.
struct IdentitySnapshot {
    var name: IdentityName
    var identity: EmulatedHub.Identity
    var connected: Bool
    /// Cloud-to-device messages waiting for the device or not yet settled.
    var cloudToDeviceMessageCount: Int
    /// The Plug and Play model id the identity announced when it last connected.
    var modelId: String?

    /// The device's or module's ETag: unique per generation and registry revision.
    var etag: String {
        Base64.encode(Array("\(self.identity.registry.generationId):\(self.identity.registry.revision)".utf8))
    }

    /// The twin's ETag, from its overall version (IoT Hub's form: base64 of 8 big-endian bytes).
    var twinETag: String {
        let version = UInt64(clamping: self.identity.registry.twinVersion)
        return Base64.encode((0..<8).map { UInt8(truncatingIfNeeded: version >> (8 * (7 - $0))) })
    }
}

extension EmulatedHub {
    func snapshot(_ name: IdentityName) -> IdentitySnapshot? {
        guard let identity = self.identities[name] else { return nil }
        let pending = self.cloudToDevice.count {
            $0.deviceId == name.deviceId && name.moduleId == nil && ($0.state == .queued || $0.state == .delivered)
        }
        return IdentitySnapshot(
            name: name,
            identity: identity,
            connected: self.links[name] != nil,
            cloudToDeviceMessageCount: pending,
            modelId: self.modelIds[name]
        )
    }

    /// Devices (not modules), ordered by id, at most `limit`.
    func deviceSnapshots(limit: Int = .max) -> [IdentitySnapshot] {
        self.identities.keys.filter { $0.moduleId == nil }.sorted { $0.deviceId < $1.deviceId }.prefix(limit)
            .compactMap { self.snapshot($0) }
    }

    /// Modules of `deviceId`, or of every device when `nil`, ordered by device and module id.
    func moduleSnapshots(of deviceId: String?) -> [IdentitySnapshot] {
        self.identities.keys
            .filter { $0.moduleId != nil && (deviceId == nil || $0.deviceId == deviceId) }
            .sorted { ($0.deviceId, $0.moduleId ?? "") < ($1.deviceId, $1.moduleId ?? "") }
            .compactMap { self.snapshot($0) }
    }

    /// Creates (no condition; fails if it exists) or updates (a condition; fails if it is missing or the ETag
    /// differs) a device or module. Disabling a connected identity drops its connection.
    func upsert(_ specification: IdentitySpecification, condition: EntityTagCondition?)
        async throws(RegistryFailure) -> IdentitySnapshot
    {
        let name = specification.name
        if name.moduleId != nil, self.identities[IdentityName(deviceId: name.deviceId)] == nil {
            throw .deviceNotFound(name.deviceId)
        }
        let existing = self.snapshot(name)
        switch (existing, condition) {
        case (.some, nil): throw .alreadyExists(name)
        case (nil, .some):
            if name.moduleId != nil { throw .moduleNotFound(name) }
            throw .deviceNotFound(name.deviceId)
        case (.some(let current), .some(let condition)):
            guard condition.matches(current.etag) else {
                throw .preconditionFailed("the ETag in If-Match does not match '\(name)'")
            }
        case (nil, nil): break
        }
        func key(_ base64: String?) throws(RegistryFailure) -> SymmetricKey {
            do throws(AzureIoTError) {
                return try SymmetricKey(
                    base64: base64 ?? Base64.encode((0..<32).map { _ in UInt8.random(in: 0...255) })
                )
            } catch {
                throw .invalid("a symmetric key is not valid base64")
            }
        }
        var identity =
            existing?.identity
            ?? Identity(
                key: nil,
                thumbprint: nil,
                certificateAuthorities: [],
                authentication: .none,
                twin: TwinRecord(desired: .object([:]), desiredVersion: 1, reported: .object([:]), reportedVersion: 1),
                registry: RegistryFields(generationId: self.makeGenerationId())
            )
        identity.authentication = specification.authentication
        // Credentials of the other kinds go; only this kind's are set.
        (identity.key, identity.secondaryKey) = (nil, nil)
        (identity.thumbprint, identity.secondaryThumbprint) = (nil, nil)
        identity.certificateAuthorities = []
        switch specification.authentication {
        case .sas:
            identity.key = try key(specification.primaryKey)
            identity.secondaryKey = try key(specification.secondaryKey)
        case .selfSigned:
            guard let primary = specification.primaryThumbprint else {
                throw .invalid("a selfSigned identity needs authentication.x509Thumbprint.primaryThumbprint")
            }
            identity.thumbprint = primary
            identity.secondaryThumbprint = specification.secondaryThumbprint
        case .certificateAuthority:
            identity.certificateAuthorities = self.verifiedCertificateAuthorities
        case .none:
            break
        }
        if identity.registry.enabled != specification.enabled { identity.registry.statusUpdatedTime = Date() }
        identity.registry.enabled = specification.enabled
        identity.registry.statusReason = specification.statusReason
        identity.registry.iotEdge = specification.iotEdge
        identity.registry.managedBy = specification.managedBy
        if existing != nil { identity.registry.revision += 1 }
        self.identities[name] = identity
        await self.persist(name)
        guard let result = self.snapshot(name) else { throw .deviceNotFound(name.deviceId) }
        if !specification.enabled {
            let affected = self.links.keys.filter {
                $0 == name || (name.moduleId == nil && $0.deviceId == name.deviceId)
            }
            for identity in affected {
                await self.drop(identity, reason: "'\(name)' was disabled in the registry")
            }
        }
        return result
    }

    /// Deletes a device (with its modules, twin and cloud-to-device queue) or a module, dropping their connections.
    func remove(_ name: IdentityName, condition: EntityTagCondition?) async throws(RegistryFailure) {
        guard let current = self.snapshot(name) else {
            if name.moduleId != nil { throw .moduleNotFound(name) }
            throw .deviceNotFound(name.deviceId)
        }
        if let condition, !condition.matches(current.etag) {
            throw .preconditionFailed("the ETag in If-Match does not match '\(name)'")
        }
        let removed = self.identities.keys.filter {
            $0 == name || (name.moduleId == nil && $0.deviceId == name.deviceId)
        }
        for identity in removed { self.identities[identity] = nil }
        await self.persist(name)
        if name.moduleId == nil {
            let gone = self.cloudToDevice.filter { $0.deviceId == name.deviceId }.map(\.messageId)
            self.cloudToDevice.removeAll { $0.deviceId == name.deviceId }
            if let store = self.store { try? await store.deleteCloudToDevice(gone) }
        }
        for identity in removed { await self.drop(identity, reason: "'\(identity)' was deleted from the registry") }
    }

    /// Changes a twin's tags and desired properties: merged as JSON merge patches, or replaced (`replace`).
    /// Desired changes go to the connected device as a patch; the twin's versions move on.
    func updateTwin(
        _ name: IdentityName,
        tags: JSONValue?,
        desired: JSONValue?,
        replace: Bool,
        condition: EntityTagCondition?
    ) async throws(RegistryFailure) -> IdentitySnapshot {
        guard let current = self.snapshot(name) else {
            if name.moduleId != nil { throw .moduleNotFound(name) }
            throw .deviceNotFound(name.deviceId)
        }
        if let condition, !condition.matches(current.twinETag) {
            throw .preconditionFailed("the ETag in If-Match does not match the twin of '\(name)'")
        }
        if let tags {
            let updated = replace ? tags : current.identity.registry.tags.merging(tags)
            if updated != current.identity.registry.tags {
                self.identities[name]?.registry.tags = updated
                self.identities[name]?.registry.twinVersion += 1
                await self.persist(name)
            }
        }
        if let desired {
            var patch = desired
            if replace {
                // The device gets the difference: new and changed members, and null for each removed one.
                var members = desired.objectValue
                for key in current.identity.twin.desired.objectValue.keys where members[key] == nil {
                    members[key] = .null
                }
                patch = .object(members)
            }
            if replace { self.identities[name]?.twin.desired = .object([:]) }
            if patch != .object([:]) || replace {
                _ = await self.patchDesired(name, replace ? desired : patch, announce: patch)
            }
        }
        guard let result = self.snapshot(name) else {
            if name.moduleId != nil { throw .moduleNotFound(name) }
            throw .deviceNotFound(name.deviceId)
        }
        return result
    }

    /// Removes the device's queued and unsettled cloud-to-device messages; returns how many.
    func purgeCloudToDevice(deviceId: String) async -> Int {
        let purged = self.cloudToDevice.filter {
            $0.deviceId == deviceId && ($0.state == .queued || $0.state == .delivered)
        }.map(\.messageId)
        self.cloudToDevice.removeAll { purged.contains($0.messageId) }
        if let store = self.store { try? await store.deleteCloudToDevice(purged) }
        return purged.count
    }
}
