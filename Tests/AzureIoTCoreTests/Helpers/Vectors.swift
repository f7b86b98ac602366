import AzureIoTTestSupport
import Foundation

/// The SAS and derived-key vectors shipped under `Vectors/`.
struct VectorFile: Decodable {
    struct SAS: Decodable {
        let resourceURI: String
        let key: String
        let policyName: String?
        let expiry: UInt64
        let stringToSign: String
        let signature: String
        let token: String
    }
    struct Derived: Decodable {
        let groupKey: String
        let registrationId: String
        let derivedKey: String
    }
    struct Encoding: Decodable {
        let input: String
        let encoded: String
    }
    let sas: [SAS]
    let derivedKeys: [Derived]
    let percentEncoding: [Encoding]?

    static func load(_ name: String) throws -> VectorFile {
        guard let url = Bundle.module.url(forResource: name, withExtension: "json", subdirectory: "Vectors") else {
            throw TestFailure("missing vector file \(name).json")
        }
        return try JSONDecoder().decode(VectorFile.self, from: Data(contentsOf: url))
    }

    /// Both files: the shared seed vectors and this project's own.
    static func all() throws -> [VectorFile] { [try load("seed-vectors"), try load("extra-vectors")] }
}
