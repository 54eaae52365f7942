//! Analysis of recorded profiles.
