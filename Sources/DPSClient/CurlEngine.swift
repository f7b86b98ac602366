import AzureIoTCore
private import CAzureIoTCurl
private import CAzureIoTCurlShims
import Foundation
import Synchronization

/// Runs HTTPS requests on libcurl's multi interface, on one dedicated thread: no curl call ever blocks Swift's
/// cooperative pool. Requests are added from any task; completion, failure, timeout and cancellation resume the
/// suspended caller exactly once. libcurl honours `HTTPS_PROXY`/`NO_PROXY` like the curl command does.
final class CurlEngine: @unchecked Sendable {
    /// The process-wide engine.
    static let shared = CurlEngine()

    /// The most a DPS response body may hold (its documents are a few KB); a larger one is aborted as it arrives.
    static let maximumResponseBytes = 1 << 20
    /// The most a response's header lines may hold together.
    static let maximumHeaderBytes = 64 * 1024

    /// Everything one transfer owns; lives from `add` until its continuation is resumed.
    ///
    /// Thread ownership: the requesting task builds it (``configure(_:request:timeout:userAgent:)``) and hands it
    /// to the engine through the locked `State`; from then on only the engine thread touches it — libcurl's write,
    /// header and SSL_CTX callbacks run on that thread inside `curl_multi_perform` — until the engine resumes the
    /// continuation, which happens exactly once, after libcurl has let go of the handle. That hand-over through the
    /// lock is why the class can be `@unchecked Sendable` with mutable fields.
    final class Transfer: @unchecked Sendable {
        let id: UInt64
        let easy: UnsafeMutableRawPointer
        var headerList: UnsafeMutableRawPointer?
        var requestBody: [CChar] = []
        var status = 0
        var headers: [String: String] = [:]
        var body: [UInt8] = []
        var tls: TLSConfiguration
        var tlsError: AzureIoTError?
        /// Set when the server sent more than ``CurlEngine/maximumResponseBytes`` (the transfer was aborted).
        var responseTooLarge = false
        var headerBytes = 0
        var continuation: CheckedContinuation<HTTPResponse, any Error>?

        init(id: UInt64, easy: UnsafeMutableRawPointer, tls: TLSConfiguration) {
            self.id = id
            self.easy = easy
            self.tls = tls
        }

        deinit {
            curl_slist_free_all(self.headerList?.assumingMemoryBound(to: curl_slist.self))
            curl_easy_cleanup(self.easy)
        }
    }

    private struct State {
        var adding: [Transfer] = []
        var cancelling: Set<UInt64> = []
        var cancelledEarly: Set<UInt64> = []
        var running: [UInt64: Transfer] = [:]
        var nextId: UInt64 = 1
    }

    // The multi handle is used only on the engine thread, except `curl_multi_wakeup`, which is thread-safe.
    private let multi: UnsafeMutableRawPointer
    private let state = Mutex(State())

    /// `curl_global_init`'s result; a failure there fails every request with a typed error.
    private let globalInitResult: Int32

    private init() {
        self.globalInitResult = azi_curl_global_init()
        self.multi = curl_multi_init()
        _ = azi_curl_multi_setopt_long(self.multi, Int32(CURLMOPT_MAX_TOTAL_CONNECTIONS.rawValue), 256)
        let thread = Thread { [self] in self.run() }
        thread.name = "AzureIoT.CurlEngine"
        thread.start()
    }

    /// Performs `request` with `tls`, failing with ``AzureIoTError/Code/timedOut`` after `timeout`.
    func perform(
        _ request: HTTPRequest,
        tls: TLSConfiguration,
        timeout: Duration,
        userAgent: String,
        proxy: String? = nil
    ) async throws
        -> HTTPResponse
    {
        guard self.globalInitResult == Int32(CURLE_OK.rawValue) else {
            throw AzureIoTError(
                .ioFailure,
                "libcurl could not initialise (curl_global_init returned \(self.globalInitResult))"
            )
        }
        guard let easy = curl_easy_init() else {
            throw AzureIoTError(.ioFailure, "libcurl could not create a request handle")
        }
        let id = self.state.withLock { state -> UInt64 in
            defer { state.nextId += 1 }
            return state.nextId
        }
        let transfer = Transfer(id: id, easy: easy, tls: tls)
        try Self.configure(transfer, request: request, timeout: timeout, userAgent: userAgent, proxy: proxy)
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                transfer.continuation = continuation
                let cancelled = self.state.withLock { state -> Bool in
                    if state.cancelledEarly.remove(id) != nil { return true }
                    state.adding.append(transfer)
                    return false
                }
                if cancelled {
                    transfer.continuation = nil
                    continuation.resume(throwing: CancellationError())
                } else {
                    curl_multi_wakeup(self.multi)
                }
            }
        } onCancel: {
            _ = self.state.withLock { state in
                if state.running[id] != nil || state.adding.contains(where: { $0.id == id }) {
                    state.cancelling.insert(id)
                } else {
                    state.cancelledEarly.insert(id)
                }
            }
            curl_multi_wakeup(self.multi)
        }
    }

    // MARK: - Engine thread

    private func run() {
        while true {
            let (toAdd, toCancel) = self.state.withLock { state -> ([Transfer], [Transfer]) in
                let adding = state.adding
                state.adding.removeAll()
                for transfer in adding { state.running[transfer.id] = transfer }
                let cancelling = state.cancelling.compactMap { state.running.removeValue(forKey: $0) }
                state.cancelling.removeAll()
                return (adding, cancelling)
            }
            for transfer in toAdd { curl_multi_add_handle(self.multi, transfer.easy) }
            for transfer in toCancel {
                curl_multi_remove_handle(self.multi, transfer.easy)
                Self.finish(transfer, with: .failure(CancellationError()))
            }
            var running: Int32 = 0
            curl_multi_perform(self.multi, &running)
            var queued: Int32 = 0
            while let message = curl_multi_info_read(self.multi, &queued) {
                guard message.pointee.msg == CURLMSG_DONE, let easy = message.pointee.easy_handle else { continue }
                let code = message.pointee.data.result
                curl_multi_remove_handle(self.multi, easy)
                // CURLOPT_PRIVATE holds the transfer's id: a dictionary lookup, not a scan of every running transfer.
                var privateValue: UnsafeMutableRawPointer?
                _ = azi_curl_getinfo_pointer(easy, Int32(CURLINFO_PRIVATE.rawValue), &privateValue)
                let id = UInt64(UInt(bitPattern: privateValue))
                let transfer = self.state.withLock { state in state.running.removeValue(forKey: id) }
                guard let transfer else { continue }
                Self.finish(transfer, with: Self.result(of: transfer, code: code))
            }
            curl_multi_poll(self.multi, nil, 0, 1000, nil)
        }
    }

    private static func finish(_ transfer: Transfer, with result: Result<HTTPResponse, any Error>) {
        let continuation = transfer.continuation
        transfer.continuation = nil
        continuation?.resume(with: result)
    }

    private static func result(of transfer: Transfer, code: CURLcode) -> Result<HTTPResponse, any Error> {
        if code == CURLE_OK {
            var status = 0
            _ = azi_curl_getinfo_long(transfer.easy, Int32(CURLINFO_RESPONSE_CODE.rawValue), &status)
            return .success(HTTPResponse(status: status, headers: transfer.headers, body: transfer.body))
        }
        if let tlsError = transfer.tlsError { return .failure(tlsError) }
        var connectCode = 0
        _ = azi_curl_getinfo_long(transfer.easy, Int32(CURLINFO_HTTP_CONNECTCODE.rawValue), &connectCode)
        if connectCode == 401 || connectCode == 407 {
            return .failure(
                AzureIoTError(
                    .proxyAuthenticationRequired,
                    "the proxy answered CONNECT with HTTP \(connectCode): it wants credentials, or refused the ones given"
                )
            )
        }
        if connectCode >= 300 {
            // The proxy refused the tunnel: not worth retrying.
            return .failure(AzureIoTError(.proxyRefused, "the proxy answered CONNECT with HTTP \(connectCode)"))
        }
        if transfer.responseTooLarge {
            return .failure(
                ProvisioningError(
                    .malformedResponse,
                    "the response is larger than \(Self.maximumResponseBytes) bytes of body or \(Self.maximumHeaderBytes) of headers"
                )
            )
        }
        let text = String(cString: curl_easy_strerror(code))
        switch code {
        case CURLE_OPERATION_TIMEDOUT:
            return .failure(AzureIoTError(.timedOut, "the HTTPS request timed out (\(text))"))
        case CURLE_COULDNT_RESOLVE_HOST, CURLE_COULDNT_RESOLVE_PROXY:
            return .failure(AzureIoTError(.nameResolutionFailed, text))
        case CURLE_COULDNT_CONNECT:
            return .failure(AzureIoTError(.connectionFailed, text))
        case CURLE_PEER_FAILED_VERIFICATION:
            return .failure(AzureIoTError(.certificateUntrusted, "the server certificate was not accepted: \(text)"))
        case CURLE_SSL_CERTPROBLEM, CURLE_SSL_CLIENTCERT:
            return .failure(
                AzureIoTError(.clientCertificateRejected, "the client certificate was not accepted: \(text)")
            )
        case CURLE_SSL_CONNECT_ERROR, CURLE_SSL_CACERT_BADFILE:
            return .failure(AzureIoTError(.tlsHandshakeFailed, "the TLS handshake failed: \(text)"))
        case CURLE_RECV_ERROR, CURLE_SEND_ERROR, CURLE_GOT_NOTHING:
            // With TLS 1.3 a rejected client certificate shows up as a failed read after the handshake.
            return .failure(AzureIoTError(.connectionClosed, "the connection failed: \(text)"))
        default:
            return .failure(AzureIoTError(.ioFailure, "libcurl: \(text)"))
        }
    }

    // MARK: - Request set-up

    /// A `curl_easy_setopt` that libcurl refused (an option this libcurl was built without, such as
    /// `CURLOPT_SSL_CTX_FUNCTION` on a libcurl without the OpenSSL backend, which would otherwise silently drop the
    /// custom trust roots and the client certificate).
    struct OptionRefused: Error, Sendable, CustomStringConvertible {
        /// The option's name as libcurl's documentation spells it.
        let option: String
        /// libcurl's `CURLcode`.
        let code: Int32
        /// `curl_easy_strerror(code)`.
        let reason: String
        var description: String { "libcurl refused \(self.option): \(self.reason) (CURLcode \(self.code))" }
    }

    private static func configure(
        _ transfer: Transfer,
        request: HTTPRequest,
        timeout: Duration,
        userAgent: String,
        proxy: String?
    )
        throws(ProvisioningError)
    {
        let easy = transfer.easy
        var refused: OptionRefused?
        func check(_ name: String, _ result: Int32) {
            guard result != Int32(CURLE_OK.rawValue), refused == nil else { return }
            let reason = String(cString: curl_easy_strerror(CURLcode(UInt32(bitPattern: result))))
            refused = OptionRefused(option: name, code: result, reason: reason)
        }
        func set(_ name: String, _ option: CURLoption, _ value: String) {
            check(name, azi_curl_setopt_string(easy, Int32(option.rawValue), value))
        }
        func set(_ name: String, _ option: CURLoption, _ value: Int) {
            check(name, azi_curl_setopt_long(easy, Int32(option.rawValue), value))
        }
        func set(_ name: String, _ option: CURLoption, pointer: UnsafeMutableRawPointer?) {
            check(name, azi_curl_setopt_pointer(easy, Int32(option.rawValue), pointer))
        }

        set("CURLOPT_URL", CURLOPT_URL, request.url)
        set("CURLOPT_NOSIGNAL", CURLOPT_NOSIGNAL, 1)
        set("CURLOPT_USERAGENT", CURLOPT_USERAGENT, userAgent)
        set("CURLOPT_SSLVERSION", CURLOPT_SSLVERSION, Int(CURL_SSLVERSION_TLSv1_2))
        // Milliseconds for libcurl, clamped to a day: any longer request is bounded by the caller's deadline anyway,
        // and a huge time-out must not overflow on the way.
        let (seconds, attoseconds) = timeout.components
        let milliseconds =
            seconds >= 86_400 ? 86_400_000 : max(1, Int(seconds) * 1000 + Int(attoseconds / 1_000_000_000_000_000))
        set("CURLOPT_TIMEOUT_MS", CURLOPT_TIMEOUT_MS, milliseconds)
        set("CURLOPT_CONNECTTIMEOUT_MS", CURLOPT_CONNECTTIMEOUT_MS, milliseconds)
        if request.method == "GET" {
            set("CURLOPT_HTTPGET", CURLOPT_HTTPGET, 1)
        } else {
            set("CURLOPT_CUSTOMREQUEST", CURLOPT_CUSTOMREQUEST, request.method)
        }
        if let body = request.body {
            transfer.requestBody = body.map { CChar(bitPattern: $0) }
            set("CURLOPT_POSTFIELDSIZE", CURLOPT_POSTFIELDSIZE, body.count)
            transfer.requestBody.withUnsafeMutableBufferPointer { buffer in
                set(
                    "CURLOPT_COPYPOSTFIELDS",
                    CURLOPT_COPYPOSTFIELDS,
                    pointer: UnsafeMutableRawPointer(buffer.baseAddress)
                )
            }
        }
        for (name, value) in request.headers {
            transfer.headerList = UnsafeMutableRawPointer(
                curl_slist_append(transfer.headerList?.assumingMemoryBound(to: curl_slist.self), "\(name): \(value)")
            )
        }
        // Stop curl adding "Expect: 100-continue" for bodies; DPS answers directly.
        transfer.headerList = UnsafeMutableRawPointer(
            curl_slist_append(transfer.headerList?.assumingMemoryBound(to: curl_slist.self), "Expect:")
        )
        set("CURLOPT_HTTPHEADER", CURLOPT_HTTPHEADER, pointer: UnsafeMutableRawPointer(transfer.headerList))

        let context = Unmanaged.passUnretained(transfer).toOpaque()
        set("CURLOPT_WRITEDATA", CURLOPT_WRITEDATA, pointer: context)
        set(
            "CURLOPT_WRITEFUNCTION",
            CURLOPT_WRITEFUNCTION,
            pointer: unsafeBitCast(Self.writeBody, to: UnsafeMutableRawPointer.self)
        )
        set("CURLOPT_HEADERDATA", CURLOPT_HEADERDATA, pointer: context)
        set(
            "CURLOPT_HEADERFUNCTION",
            CURLOPT_HEADERFUNCTION,
            pointer: unsafeBitCast(Self.writeHeader, to: UnsafeMutableRawPointer.self)
        )
        set("CURLOPT_SSL_CTX_DATA", CURLOPT_SSL_CTX_DATA, pointer: context)
        set(
            "CURLOPT_SSL_CTX_FUNCTION",
            CURLOPT_SSL_CTX_FUNCTION,
            pointer: unsafeBitCast(Self.configureTLS, to: UnsafeMutableRawPointer.self)
        )
        // libcurl reuses a pooled connection when its own TLS options match; it cannot see what the SSL_CTX callback
        // installs. Only the system roots or a CA file (set as CURLOPT_CAINFO, which curl compares) without a client
        // certificate may share connections; anything else gets a connection of its own.
        var shareable = transfer.tls.clientIdentity == nil
        switch transfer.tls.trustRoots {
        case .system: break
        case .pemFile(let path): set("CURLOPT_CAINFO", CURLOPT_CAINFO, path)
        case .pem, .certificates: shareable = false
        }
        if !shareable {
            set("CURLOPT_FRESH_CONNECT", CURLOPT_FRESH_CONNECT, 1)
            set("CURLOPT_FORBID_REUSE", CURLOPT_FORBID_REUSE, 1)
        }
        if let socket = request.unixSocketPath {
            set("CURLOPT_UNIX_SOCKET_PATH", CURLOPT_UNIX_SOCKET_PATH, socket)
        }
        if request.direct {
            // A local service: never through a proxy, whatever the environment says.
            set("CURLOPT_NOPROXY", CURLOPT_NOPROXY, "*")
        } else if let proxy {
            // An explicit proxy (credentials in its URL); without one libcurl follows https_proxy/no_proxy itself.
            set("CURLOPT_PROXY", CURLOPT_PROXY, proxy)
            set("CURLOPT_PROXYAUTH", CURLOPT_PROXYAUTH, azi_curl_auth_any())
        }
        set("CURLOPT_PRIVATE", CURLOPT_PRIVATE, pointer: UnsafeMutableRawPointer(bitPattern: UInt(transfer.id)))
        if let refused {
            throw ProvisioningError(
                .invalidConfiguration,
                "this libcurl cannot make the request as configured: \(refused)",
                underlying: refused
            )
        }
    }

    private static let writeBody:
        @convention(c) (UnsafeMutablePointer<CChar>?, Int, Int, UnsafeMutableRawPointer?) -> Int = {
            data,
            size,
            count,
            context in
            guard let data, let context else { return 0 }
            let transfer = Unmanaged<Transfer>.fromOpaque(context).takeUnretainedValue()
            let length = size * count
            guard transfer.body.count + length <= CurlEngine.maximumResponseBytes else {
                transfer.responseTooLarge = true
                return 0
            }
            data.withMemoryRebound(to: UInt8.self, capacity: length) {
                transfer.body.append(contentsOf: UnsafeBufferPointer(start: $0, count: length))
            }
            return length
        }

    private static let writeHeader:
        @convention(c) (UnsafeMutablePointer<CChar>?, Int, Int, UnsafeMutableRawPointer?) -> Int = {
            data,
            size,
            count,
            context in
            guard let data, let context else { return 0 }
            let transfer = Unmanaged<Transfer>.fromOpaque(context).takeUnretainedValue()
            let length = size * count
            transfer.headerBytes += length
            guard transfer.headerBytes <= CurlEngine.maximumHeaderBytes else {
                transfer.responseTooLarge = true
                return 0
            }
            let line = data.withMemoryRebound(to: UInt8.self, capacity: length) {
                String(decoding: UnsafeBufferPointer(start: $0, count: length), as: UTF8.self)
            }.trimmingCharacters(in: .whitespacesAndNewlines)
            if line.hasPrefix("HTTP/") {
                transfer.headers.removeAll()
            } else if let colon = line.firstIndex(of: ":") {
                let name = line[..<colon].lowercased()
                let value = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
                transfer.headers[name] = value
            }
            return length
        }

    private static let configureTLS:
        @convention(c) (UnsafeMutableRawPointer?, UnsafeMutableRawPointer?, UnsafeMutableRawPointer?) -> CURLcode = {
            _,
            sslContext,
            context in
            guard let sslContext, let context else { return CURLE_SSL_CONNECT_ERROR }
            let transfer = Unmanaged<Transfer>.fromOpaque(context).takeUnretainedValue()
            do throws(AzureIoTError) {
                try TLSContext.apply(transfer.tls, toForeignContext: sslContext)
                return CURLE_OK
            } catch {
                transfer.tlsError = error
                return CURLE_SSL_CERTPROBLEM
            }
        }
}
