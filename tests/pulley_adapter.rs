//! Tests of pulley_adapter (to be written).
