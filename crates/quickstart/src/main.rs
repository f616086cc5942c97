//! `cargo run -p quickstart`: see the crate docs in `lib.rs`.

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    match quickstart::run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("quickstart: {e:#}");
            ExitCode::FAILURE
        }
    }
}
