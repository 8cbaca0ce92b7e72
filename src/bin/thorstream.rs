fn main() {
    println!("thorstream {}", env!("CARGO_PKG_VERSION"));
}
