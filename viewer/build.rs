//! Compiles `ui/dashboard.slint`, with debug info so tests can find elements by id.

fn main() {
    let config = slint_build::CompilerConfiguration::new().with_debug_info(true);
    if let Err(e) = slint_build::compile_with_config("ui/dashboard.slint", config) {
        // A build script reports failure by panicking; the message names the .slint error.
        panic!("compiling ui/dashboard.slint failed: {e}");
    }
}
