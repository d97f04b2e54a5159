//! The `azoth` command.

fn main() {
    eprintln!("azoth: the command line is not built yet");
    std::process::exit(2);
}
