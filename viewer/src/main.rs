//! `fleetrec-viewer`: not built yet (see the viewer issue). It exits with status 3 so scripts and
//! users can tell it apart from a real stage; it has no fake behaviour.
#![allow(clippy::print_stderr)]

fn main() -> std::process::ExitCode {
    eprintln!("fleetrec-viewer is not built yet: this stage arrives with its own issue");
    std::process::ExitCode::from(3)
}
