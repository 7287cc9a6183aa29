//! Writes real sealed segments (shared codec, sidecar manifests) for the uploader benchmark:
//! `cargo run --release -p uploader --example make_segments -- DIR COUNT SIZE_MIB`.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::process::ExitCode;

use uploader::fixtures::{write_sealed, FixtureSegment};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [dir, count, size_mib] = args.as_slice() else {
        eprintln!("usage: make_segments DIR COUNT SIZE_MIB");
        return ExitCode::from(2);
    };
    let (Ok(count), Ok(size_mib)) = (count.parse::<u64>(), size_mib.parse::<u64>()) else {
        eprintln!("COUNT and SIZE_MIB must be numbers");
        return ExitCode::from(2);
    };
    let dir = std::path::Path::new(dir);
    let mut total = 0;
    for seq in 1..=count {
        // Like a writer rotating at SIZE_MIB: the segment stays just under it.
        let spec = FixtureSegment::new(seq, "robot1", (size_mib * 1024 * 1024).saturating_sub(128 * 1024));
        match write_sealed(dir, &spec) {
            Ok(m) => total += m.size,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    println!("{count} segments, {total} bytes in {}", dir.display());
    ExitCode::SUCCESS
}
