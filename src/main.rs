fn main() -> std::process::ExitCode {
    subsync::cli::main()
}
