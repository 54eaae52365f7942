//! Tests of html (to be written).
