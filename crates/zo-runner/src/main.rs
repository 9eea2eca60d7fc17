fn main() {
    eprintln!("zo: not built yet");
    std::process::exit(2);
}
