//! Tests of demo (to be written).
