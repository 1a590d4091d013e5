//! A local Import.io API server (`importfs emulator`).
