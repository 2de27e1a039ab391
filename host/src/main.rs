fn main() -> std::process::ExitCode {
    spool::cli::main()
}
