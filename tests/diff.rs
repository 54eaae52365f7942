//! Tests of diff (to be written).
