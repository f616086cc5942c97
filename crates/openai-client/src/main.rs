//! `openai-client`: see `openai-client --help` and client-core's `cli` module.

fn main() -> std::process::ExitCode {
    client_core::cli::main(&openai_client::Factory)
}
