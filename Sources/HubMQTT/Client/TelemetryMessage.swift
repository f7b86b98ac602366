public import AzureIoTCore

extension TelemetryMessage {
    /// The property bag as Azure's SDKs send it: system properties first (`$.mid`, `$.cid`, `$.uid`, `$.ct`, `$.ce`,
    /// `$.ctime`, `$.exp`, `$.sub`), then the application properties.
    public var propertyBag: PropertyBag {
        var pairs: [(key: String, value: String?)] = []
        func add(_ key: String, _ value: String?) { if let value { pairs.append((key, value)) } }
        add("$.mid", self.messageId)
        add("$.cid", self.correlationId)
        add("$.uid", self.userId)
        add("$.ct", self.contentType)
        add("$.ce", self.contentEncoding)
        add("$.ctime", self.creationTime)
        add("$.exp", self.expiryTime)
        add("$.sub", self.componentName)
        add("$.on", self.outputName)
        for (key, value) in self.properties { pairs.append((key, value)) }
        return PropertyBag(pairs)
    }
}
