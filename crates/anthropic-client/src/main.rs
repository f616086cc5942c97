//! `anthropic-client`: see `anthropic-client --help` and client-core's `cli` module.

fn main() -> std::process::ExitCode {
    client_core::cli::main(&anthropic_client::Factory)
}
