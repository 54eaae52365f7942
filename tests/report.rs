//! Tests of report (to be written).
