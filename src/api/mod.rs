//! The Import.io API v2: models shared with the emulator, and the client.

pub mod models;
