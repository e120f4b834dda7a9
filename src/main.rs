fn main() -> std::process::ExitCode {
    ballast::cli::main()
}
