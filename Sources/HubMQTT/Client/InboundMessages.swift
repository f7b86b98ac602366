import AzureIoTCore

extension CloudToDeviceMessage {
    /// A message from the property bag of a C2D topic; `delivery` is the PUBLISH's packet id and connection, for the
    /// PUBACK sent when the application takes it.
    init(
        body: [UInt8],
        properties: PropertyBag,
        inputName: String? = nil,
        delivery: (packetId: UInt16, generation: Int)? = nil
    ) {
        self.init(
            body: body,
            messageId: properties["$.mid"],
            correlationId: properties["$.cid"],
            userId: properties["$.uid"],
            to: properties["$.to"],
            contentType: properties["$.ct"],
            contentEncoding: properties["$.ce"],
            expiryTime: properties["$.exp"],
            creationTime: properties["$.ctime"],
            applicationProperties: properties.pairs.filter { !$0.key.hasPrefix("$.") && !$0.key.hasPrefix("iothub-") },
            inputName: inputName,
            canRejectOrAbandon: false,
            deliveryTag: delivery.map { UInt64(truncatingIfNeeded: $0.generation) << 16 | UInt64($0.packetId) },
            settle: { outcome in
                guard outcome == .complete else {
                    throw HubMQTTError(.invalidArgument, "MQTT has no reject or abandon: taking a message completes it")
                }
            }
        )
    }

    /// The packet id and connection generation of an MQTT delivery.
    var delivery: (packetId: UInt16, generation: Int)? {
        self.deliveryTag.map { (UInt16(truncatingIfNeeded: $0), Int(truncatingIfNeeded: $0 >> 16)) }
    }
}
