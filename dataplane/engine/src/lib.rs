//! STTP data plane: source rings, fan-out workers, per-subscription encoders.
