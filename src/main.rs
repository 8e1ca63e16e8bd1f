//! The `ffrelay` binary: everything lives in the library; see `ffrelay::cli`.

fn main() -> std::process::ExitCode {
    ffrelay::cli::main()
}
