//! J.P. Morgan Checkout notifications (receive/ack message queue). So far the API client
//! (private_key_jwt tokens, receive with autoAck=false, ack by messageIdentifier, the period
//! query); the source on the runtime follows.

pub mod api;
