// Links the device-side modules into one executable so that `scripts/check-link.sh` can read what it needs at run
// time: a firmware team that uses only MQTT or AMQP must not need libcurl.
import AzureIoTCore
import AzureIoTDevice
import HubAMQP
import HubMQTT

let connectionString = "HostName=h.example;DeviceId=d;SharedAccessKey=AAAA"
let parsed = try? ConnectionString(parsing: connectionString)
print(
    parsed != nil,
    MemoryLayout<HubMQTTConfiguration>.size,
    MemoryLayout<HubAMQPConfiguration>.size,
    MemoryLayout<DeviceClientConfiguration>.size
)
