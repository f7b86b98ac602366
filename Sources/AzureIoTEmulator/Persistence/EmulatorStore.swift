import AzureIoTCore
import Dispatch
import Foundation

/// The emulator's durable state (`azure-iot emulator --data-dir DIR`): identities with their twins, pending
/// cloud-to-device messages, retained telemetry, DPS registrations and the keys generated at the first start, in one
/// SQLite database (WAL mode) with a schema version.
///
/// Every write is committed before the call returns, so what the emulator acknowledged (a PUBACK, an AMQP
/// disposition, an HTTP 200) survives the process being killed. SQLite's blocking calls run on a serial dispatch
/// queue of their own, never on the cooperative pool.
final class EmulatorStore: @unchecked Sendable {
    /// The schema this build writes; a database from a newer build is refused.
    static let schemaVersion: Int64 = 1
    static let fileName = "emulator.sqlite3"

    private let queue = DispatchQueue(label: "azure-iot.emulator.store")
    /// Only touched on `queue`.
    private let database: SQLiteDatabase
    let directory: String

    /// Opens (or creates) the database in `directory`; throws ``EmulatorError/Code/startFailed`` with the reason.
    init(directory: String) throws(EmulatorError) {
        self.directory = directory
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        } catch {
            throw EmulatorError(.startFailed, "cannot create the data directory '\(directory)'")
        }
        let path = (directory as NSString).appendingPathComponent(Self.fileName)
        do throws(SQLiteError) {
            self.database = try SQLiteDatabase(path: path)
            try self.database.execute("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;")
            let version = try self.database.query("PRAGMA user_version").first?.first?.integer ?? 0
            guard version <= Self.schemaVersion else {
                throw SQLiteError(
                    code: 0,
                    message: "schema version \(version) is newer than this emulator's \(Self.schemaVersion)"
                )
            }
            try self.database.execute(
                """
                CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
                CREATE TABLE IF NOT EXISTS identities(device_id TEXT NOT NULL, module_id TEXT NOT NULL,
                    record TEXT NOT NULL, PRIMARY KEY(device_id, module_id));
                CREATE TABLE IF NOT EXISTS cloud_to_device(message_id TEXT PRIMARY KEY, position INTEGER NOT NULL,
                    record TEXT NOT NULL);
                CREATE TABLE IF NOT EXISTS events(partition INTEGER NOT NULL, sequence INTEGER NOT NULL,
                    event TEXT NOT NULL, PRIMARY KEY(partition, sequence));
                CREATE TABLE IF NOT EXISTS registrations(registration_id TEXT PRIMARY KEY, record TEXT NOT NULL);
                PRAGMA user_version = \(Self.schemaVersion);
                """
            )
        } catch {
            throw EmulatorError(.startFailed, "cannot open the emulator database at '\(path)': \(error)")
        }
    }

    /// Runs `body` on the store's queue and returns its result.
    func perform<T: Sendable>(_ body: @escaping @Sendable (SQLiteDatabase) throws(SQLiteError) -> T)
        async throws(SQLiteError) -> T
    {
        let result: Result<T, SQLiteError> = await withCheckedContinuation { continuation in
            self.queue.async {
                do throws(SQLiteError) {
                    continuation.resume(returning: .success(try body(self.database)))
                } catch {
                    continuation.resume(returning: .failure(error))
                }
            }
        }
        return try result.get()
    }

    // MARK: - Writes

    func meta(_ key: String) async throws(SQLiteError) -> String? {
        try await self.perform { database throws(SQLiteError) in
            try database.query("SELECT value FROM meta WHERE key = ?", [.text(key)]).first?.first?.text
        }
    }

    func setMeta(_ key: String, _ value: String) async throws(SQLiteError) {
        try await self.perform { database throws(SQLiteError) in
            try database.run("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", [.text(key), .text(value)])
        }
    }

    func saveIdentity(_ name: IdentityName, _ record: JSONValue) async throws(SQLiteError) {
        let text = record.jsonText
        try await self.perform { database throws(SQLiteError) in
            try database.run(
                "INSERT OR REPLACE INTO identities(device_id, module_id, record) VALUES (?, ?, ?)",
                [.text(name.deviceId), .text(name.moduleId ?? ""), .text(text)]
            )
        }
    }

    /// Deletes an identity; a device takes its modules with it.
    func deleteIdentity(_ name: IdentityName) async throws(SQLiteError) {
        try await self.perform { database throws(SQLiteError) in
            if let moduleId = name.moduleId {
                try database.run(
                    "DELETE FROM identities WHERE device_id = ? AND module_id = ?",
                    [.text(name.deviceId), .text(moduleId)]
                )
            } else {
                try database.run("DELETE FROM identities WHERE device_id = ?", [.text(name.deviceId)])
            }
        }
    }

    func saveCloudToDevice(_ record: CloudToDeviceRecord, position: Int64) async throws(SQLiteError) {
        let text = StoredRecords.cloudToDevice(record).jsonText
        try await self.perform { database throws(SQLiteError) in
            try database.run(
                "INSERT OR REPLACE INTO cloud_to_device(message_id, position, record) VALUES (?, ?, ?)",
                [.text(record.messageId), .integer(position), .text(text)]
            )
        }
    }

    func deleteCloudToDevice(_ messageIds: [String]) async throws(SQLiteError) {
        guard !messageIds.isEmpty else { return }
        try await self.perform { database throws(SQLiteError) in
            for id in messageIds { try database.run("DELETE FROM cloud_to_device WHERE message_id = ?", [.text(id)]) }
        }
    }

    /// Stores an event and drops those of its partition below `retainedFrom` in one transaction.
    func appendEvent(_ event: PartitionEvent, partition: Int, retainedFrom: Int64) async throws(SQLiteError) {
        let text = StoredRecords.event(event).jsonText
        try await self.perform { database throws(SQLiteError) in
            try database.execute("BEGIN")
            do throws(SQLiteError) {
                try database.run(
                    "INSERT OR REPLACE INTO events(partition, sequence, event) VALUES (?, ?, ?)",
                    [.integer(Int64(partition)), .integer(event.sequenceNumber), .text(text)]
                )
                try database.run(
                    "DELETE FROM events WHERE partition = ? AND sequence < ?",
                    [.integer(Int64(partition)), .integer(retainedFrom)]
                )
                try database.execute("COMMIT")
            } catch {
                try? database.execute("ROLLBACK")
                throw error
            }
        }
    }

    func saveRegistration(_ record: ProvisioningRecord) async throws(SQLiteError) {
        let text = StoredRecords.registration(record).jsonText
        try await self.perform { database throws(SQLiteError) in
            try database.run(
                "INSERT OR REPLACE INTO registrations(registration_id, record) VALUES (?, ?)",
                [.text(record.registrationId), .text(text)]
            )
        }
    }

    // MARK: - Loading

    struct Snapshot: Sendable {
        var identities: [(IdentityName, JSONValue)] = []
        var cloudToDevice: [CloudToDeviceRecord] = []
        var events: [(partition: Int, event: PartitionEvent)] = []
        var registrations: [ProvisioningRecord] = []
    }

    /// Everything stored; rows that no longer parse are skipped (and reported by count).
    func load() async throws(SQLiteError) -> (Snapshot, skipped: Int) {
        try await self.perform { database throws(SQLiteError) in
            var snapshot = Snapshot()
            var skipped = 0
            for row in try database.query(
                "SELECT device_id, module_id, record FROM identities ORDER BY device_id, module_id"
            ) {
                guard row.count == 3, let device = row[0].text, let module = row[1].text, let text = row[2].text,
                    let record = try? JSONValue(parsing: Array(text.utf8))
                else {
                    skipped += 1
                    continue
                }
                snapshot.identities.append(
                    (IdentityName(deviceId: device, moduleId: module.isEmpty ? nil : module), record)
                )
            }
            for row in try database.query("SELECT record FROM cloud_to_device ORDER BY position") {
                guard let text = row.first?.text, let record = StoredRecords.cloudToDevice(text) else {
                    skipped += 1
                    continue
                }
                snapshot.cloudToDevice.append(record)
            }
            for row in try database.query("SELECT partition, event FROM events ORDER BY partition, sequence") {
                guard row.count == 2, let partition = row[0].integer, let text = row[1].text,
                    let event = StoredRecords.event(text)
                else {
                    skipped += 1
                    continue
                }
                snapshot.events.append((Int(partition), event))
            }
            for row in try database.query("SELECT record FROM registrations ORDER BY registration_id") {
                guard let text = row.first?.text, let record = StoredRecords.registration(text) else {
                    skipped += 1
                    continue
                }
                snapshot.registrations.append(record)
            }
            return (snapshot, skipped)
        }
    }
}
