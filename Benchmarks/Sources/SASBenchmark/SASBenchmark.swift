import AzureIoTCore

/// Prints SAS tokens minted per second on one thread, for each HMAC implementation (`provider`, the default, through
/// OpenSSL's EVP_MAC; `precomputed`, the opt-in low-level SHA-256 path), two ways:
/// - `credential`: one `SymmetricKey` reused (how `SymmetricKeyCredential` mints tokens);
/// - `one-shot`: the key decoded from base64 and keyed anew for every token.
/// Output lines: `swift <implementation> <variant> <tokens> tokens in <seconds> s = <rate> tokens/s`.
@main
enum SASBenchmark {
    static let keyText = "gPD2SOUYSOMXygVZA+pupNvWckqaS3Qnu+BUBbw7TbIZU7y2UZ5ksp4uMJfdV+nTIBayN+fZIZco4tS7oeVR/A=="
    static let resource = SASResource.registration(idScope: "0ne00057505", registrationId: "dps-sym-key-test01")

    static func main() throws {
        let arguments = CommandLine.arguments
        let count = arguments.count > 1 ? Int(arguments[1]) ?? 1_000_000 : 1_000_000
        for (label, implementation) in [("provider", HMACImplementation.provider), ("precomputed", .precomputedSHA256)]
        {
            try measure(label, implementation, count)
        }
    }

    static func measure(_ label: String, _ implementation: HMACImplementation, _ count: Int) throws {
        let key = try SymmetricKey(base64: keyText, implementation: implementation)

        // Same token as the shared vector, to prove the loop does the real work.
        precondition(
            SASToken.string(for: resource, key: key, expiry: 1_568_718_116, keyName: "registration").hasSuffix(
                "sig=yIDnZMFwLvx4rLZXY7Ljtxu2ylGsgkX%2FCYaLcivzim0%3D&se=1568718116&skn=registration"
            )
        )
        _ = run(count / 10) { expiry in
            SASToken.string(for: resource, key: key, expiry: expiry, keyName: "registration")
        }

        report("\(label) credential", count) { expiry in
            SASToken.string(for: resource, key: key, expiry: expiry, keyName: "registration")
        }
        report("\(label) one-shot", count / 4) { expiry in
            let key = try! SymmetricKey(base64: keyText, implementation: implementation)
            return SASToken.string(for: resource, key: key, expiry: expiry, keyName: "registration")
        }
    }

    static func report(_ name: String, _ count: Int, _ body: (UInt64) -> String) {
        let seconds = run(count, body)
        let rate = Double(count) / seconds
        print("swift \(name) \(count) tokens in \(String(format3(seconds))) s = \(Int(rate)) tokens/s")
    }

    static func run(_ count: Int, _ body: (UInt64) -> String) -> Double {
        let clock = ContinuousClock()
        var checksum = 0
        let start = clock.now
        for index in 0..<count {
            checksum &+= body(1_700_000_000 &+ UInt64(index)).utf8.count
        }
        let elapsed = clock.now - start
        precondition(checksum > 0)
        let (seconds, attoseconds) = elapsed.components
        return Double(seconds) + Double(attoseconds) / 1e18
    }

    static func format3(_ value: Double) -> String {
        let scaled = Int((value * 1000).rounded())
        let fraction = String(scaled % 1000)
        return "\(scaled / 1000).\(String(repeating: "0", count: 3 - fraction.count))\(fraction)"
    }
}
