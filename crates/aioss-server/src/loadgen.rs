//! The load generator of `aioss bench serve` (to be written).
