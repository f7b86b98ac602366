import AzureIoTCore
import Testing

@testable import HubMQTT

/// How a module reads edgeHub's input topics (`devices/{d}/modules/{m}/inputs/{input}/{bag}`), and what it refuses.
@Suite("Module input topics")
struct ModuleInputTopicTests {
    let module = HubTopics(deviceId: "edge1", moduleId: "filter")
    let device = HubTopics(deviceId: "dev1", moduleId: nil)

    @Test("the input's name and the property bag, with or without a bag; a device's C2D has no input")
    func inputs() throws {
        #expect(self.module.filter(for: .cloudToDeviceMessages) == "devices/edge1/modules/filter/inputs/#")
        #expect(
            try self.module.classify("devices/edge1/modules/filter/inputs/input1/%24.mid=m1&unit=C")
                == .cloudToDevice(bag: "%24.mid=m1&unit=C", inputName: "input1")
        )
        #expect(
            try self.module.classify("devices/edge1/modules/filter/inputs/input1")
                == .cloudToDevice(bag: "", inputName: "input1")
        )
        #expect(
            try self.module.classify("devices/edge1/modules/filter/inputs/input1/")
                == .cloudToDevice(bag: "", inputName: "input1")
        )
        #expect(
            try self.device.classify("devices/dev1/messages/devicebound/%24.mid=1")
                == .cloudToDevice(bag: "%24.mid=1", inputName: nil)
        )
        // Another module's inputs, or the module's own events, are not its inputs.
        #expect(try self.module.classify("devices/edge1/modules/other/inputs/input1/") == .other)
        #expect(try self.module.classify("devices/edge1/modules/filter/messages/events/") == .other)
    }

    @Test("an input topic without an input name is refused as malformed")
    func noInputName() {
        for topic in ["devices/edge1/modules/filter/inputs/", "devices/edge1/modules/filter/inputs//%24.mid=1"] {
            #expect(throws: HubMQTTError.self, "\(topic)") { try self.module.classify(topic) }
        }
    }

    @Test("a module input message keeps its input's name; its properties come from the bag")
    func message() throws {
        let bag = try PropertyBag(parsing: "%24.mid=m1&%24.ct=application%2Fjson&%24.cdid=edge1&unit=C")
        let message = CloudToDeviceMessage(body: Array("21".utf8), properties: bag, inputName: "in 1")
        #expect(message.inputName == "in 1" && message.messageId == "m1" && message.contentType == "application/json")
        #expect(message.applicationProperties.map(\.key) == ["unit"])
    }
}
