//! STTP control-plane runtime.
