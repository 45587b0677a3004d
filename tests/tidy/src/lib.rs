//! lfleet-tidy has no library code; its tests (`tests/tidy.rs`) check the source tree.
