import Foundation

/// IoT Plug and Play commands with typed requests and responses: each handler is registered for a command of a
/// component (`thermostat1*getMaxMinReport` on the wire) or of the default component (`reboot`), and
/// ``respond(to:)`` answers a `MethodRequest` with it.
///
/// The request payload is decoded as the handler's `Request` type (JSON), and the handler's `Response` is encoded as
/// the answer with status 200. A payload that does not decode is answered 400, a command nobody registered 404 (as
/// Azure's C SDK does), a ``Failure`` thrown by a handler with its status and message, and any other error 500 with
/// a fixed message (an error's text never reaches the service). Each answer that is not 200 is `{"message": "…"}`.
///
/// ```swift
/// var commands = PlugAndPlayCommands()
/// commands.register("getMaxMinReport", component: "thermostat1") { (since: String) in
///     Report(maxTemp: 23.5, minTemp: 18.0, startTime: since)
/// }
/// for await request in client.methodRequests { try await commands.respond(to: request) }
/// ```
public struct PlugAndPlayCommands: Sendable {
    /// What a handler throws to answer with a status of its choosing (e.g. 409 while busy).
    public struct Failure: Error, Sendable, Equatable {
        /// The status the service sees.
        public var status: Int
        /// The message the service sees (no secrets).
        public var message: String

        /// A failure answered with `status` and `message`.
        public init(status: Int, message: String) {
            self.status = status
            self.message = message
        }
    }

    /// The answer to one request, before it is sent.
    public struct Answer: Sendable, Equatable {
        /// The status.
        public var status: Int
        /// The JSON payload.
        public var payload: [UInt8]

        /// An answer.
        public init(status: Int, payload: [UInt8]) {
            self.status = status
            self.payload = payload
        }
    }

    private var handlers: [String: @Sendable ([UInt8]) async -> Answer] = [:]

    /// No commands yet.
    public init() {}

    /// The method name IoT Hub uses for `command` of `component` (`{component}*{command}`, or `command` alone for
    /// the default component).
    public static func methodName(_ command: String, component: String? = nil) -> String {
        component.map { "\($0)*\(command)" } ?? command
    }

    /// The commands registered, as method names.
    public var methodNames: [String] { self.handlers.keys.sorted() }

    /// Registers `handler` for `command` of `component` (`nil`: the default component); it replaces an earlier one.
    /// The payload is decoded as `Request` (a JSON string, number, object, …).
    public mutating func register<Request: Decodable & Sendable, Response: Encodable & Sendable>(
        _ command: String,
        component: String? = nil,
        _ handler: @escaping @Sendable (Request) async throws -> Response
    ) {
        self.handlers[Self.methodName(command, component: component)] = { payload in
            let request: Request
            do {
                request = try JSONDecoder().decode(
                    Request.self,
                    from: Data(payload.isEmpty ? Array("null".utf8) : payload)
                )
            } catch {
                return Self.message(400, "the payload is not a valid '\(command)' request")
            }
            return await Self.run { try await handler(request) }
        }
    }

    /// Registers `handler` for a `command` of `component` that takes no payload (whatever the payload holds).
    public mutating func register<Response: Encodable & Sendable>(
        _ command: String,
        component: String? = nil,
        _ handler: @escaping @Sendable () async throws -> Response
    ) {
        self.handlers[Self.methodName(command, component: component)] = { _ in
            await Self.run { try await handler() }
        }
    }

    /// Whether a handler is registered for the request's command.
    public func handles(_ request: MethodRequest) -> Bool { self.handlers[request.name] != nil }

    /// The answer to `name` with `payload`, without sending it (what ``respond(to:)`` sends).
    public func answer(method name: String, payload: [UInt8]) async -> Answer {
        guard let handler = self.handlers[name] else {
            return Self.message(404, "no command '\(name.prefix(128))' on this device")
        }
        return await handler(payload)
    }

    /// Answers `request` with its handler (or 404); returns whether a handler was registered. Throws what the
    /// client's `respond` throws (e.g. not connected).
    @discardableResult
    public func respond(to request: MethodRequest) async throws -> Bool {
        let answer = await self.answer(method: request.name, payload: request.payload)
        try await request.respond(status: answer.status, payload: answer.payload)
        return self.handles(request)
    }

    private static func run<Response: Encodable & Sendable>(_ body: () async throws -> Response) async -> Answer {
        do {
            let response = try await body()
            return Answer(status: 200, payload: Array(try JSONEncoder().encode(response)))
        } catch let failure as Failure {
            return Self.message(failure.status, failure.message)
        } catch {
            return Self.message(500, "the command failed")
        }
    }

    private static func message(_ status: Int, _ text: String) -> Answer {
        Answer(status: status, payload: JSONValue.object(["message": .string(text)]).jsonBytes)
    }
}
