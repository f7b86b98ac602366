import CAzureIoTSQLite

/// A value bound to or read from an SQLite statement.
enum SQLiteValue: Equatable {
    case integer(Int64)
    case text(String)
    case null

    var integer: Int64? { if case .integer(let value) = self { value } else { nil } }
    var text: String? { if case .text(let value) = self { value } else { nil } }
}

/// Why an SQLite call failed: the result code and SQLite's message.
struct SQLiteError: Error, CustomStringConvertible {
    var code: Int32
    var message: String
    var description: String { "SQLite error \(self.code): \(self.message)" }
}

/// A thin SQLite connection. Not thread-safe: ``EmulatorStore`` uses it from one serial queue only. Statements are
/// prepared once and kept.
final class SQLiteDatabase {
    private let handle: OpaquePointer
    private var statements: [String: OpaquePointer] = [:]
    /// SQLite copies bound text (SQLITE_TRANSIENT).
    private static let transient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)

    init(path: String) throws(SQLiteError) {
        var handle: OpaquePointer?
        let flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX
        let result = sqlite3_open_v2(path, &handle, flags, nil)
        guard result == SQLITE_OK, let handle else {
            let message = handle.map { String(cString: sqlite3_errmsg($0)) } ?? "cannot open"
            if let handle { sqlite3_close_v2(handle) }
            throw SQLiteError(code: result, message: message)
        }
        self.handle = handle
        sqlite3_busy_timeout(handle, 5_000)
    }

    deinit {
        for statement in self.statements.values { sqlite3_finalize(statement) }
        sqlite3_close_v2(self.handle)
    }

    private func error(_ code: Int32) -> SQLiteError {
        SQLiteError(code: code, message: String(cString: sqlite3_errmsg(self.handle)))
    }

    /// Runs statements without results (schema, pragmas, transactions).
    func execute(_ sql: String) throws(SQLiteError) {
        let result = sqlite3_exec(self.handle, sql, nil, nil, nil)
        guard result == SQLITE_OK else { throw self.error(result) }
    }

    private func prepared(_ sql: String, _ bindings: [SQLiteValue]) throws(SQLiteError) -> OpaquePointer {
        let statement: OpaquePointer
        if let cached = self.statements[sql] {
            statement = cached
        } else {
            var fresh: OpaquePointer?
            let result = sqlite3_prepare_v2(self.handle, sql, -1, &fresh, nil)
            guard result == SQLITE_OK, let fresh else { throw self.error(result) }
            self.statements[sql] = fresh
            statement = fresh
        }
        sqlite3_reset(statement)
        sqlite3_clear_bindings(statement)
        for (index, value) in bindings.enumerated() {
            let position = Int32(index + 1)
            let result: Int32
            switch value {
            case .integer(let number): result = sqlite3_bind_int64(statement, position, number)
            case .text(let text): result = sqlite3_bind_text(statement, position, text, -1, Self.transient)
            case .null: result = sqlite3_bind_null(statement, position)
            }
            guard result == SQLITE_OK else { throw self.error(result) }
        }
        return statement
    }

    /// Runs one statement with `bindings` (`?` placeholders), ignoring rows.
    func run(_ sql: String, _ bindings: [SQLiteValue] = []) throws(SQLiteError) {
        let statement = try self.prepared(sql, bindings)
        defer { sqlite3_reset(statement) }
        var result = sqlite3_step(statement)
        while result == SQLITE_ROW { result = sqlite3_step(statement) }
        guard result == SQLITE_DONE else { throw self.error(result) }
    }

    /// Runs one query; returns its rows.
    func query(_ sql: String, _ bindings: [SQLiteValue] = []) throws(SQLiteError) -> [[SQLiteValue]] {
        let statement = try self.prepared(sql, bindings)
        defer { sqlite3_reset(statement) }
        var rows: [[SQLiteValue]] = []
        while true {
            let result = sqlite3_step(statement)
            if result == SQLITE_DONE { return rows }
            guard result == SQLITE_ROW else { throw self.error(result) }
            let columns = sqlite3_column_count(statement)
            rows.append(
                (0..<columns).map { column in
                    switch sqlite3_column_type(statement, column) {
                    case SQLITE_INTEGER: return .integer(sqlite3_column_int64(statement, column))
                    case SQLITE_NULL: return .null
                    default:
                        guard let text = sqlite3_column_text(statement, column) else { return .null }
                        return .text(String(cString: text))
                    }
                }
            )
        }
    }
}
