/// The MQTT codec's types (QoS, topics, packets) are part of this module's API: users import HubMQTT alone.
@_exported public import MQTTCodec
