/// The AMQP codec's types (values, messages, performatives) are part of this module's API: users import HubAMQP alone.
@_exported public import AMQPCodec
