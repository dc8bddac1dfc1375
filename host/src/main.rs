fn main() {
    // TODO: the plugin protocol entry point.
}
