//! Tests of convert (to be written).
