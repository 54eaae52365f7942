//! Tests of sequences (to be written).
