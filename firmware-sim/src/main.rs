//! `spool-sim`: see the crate docs ([`spool_sim`]).

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let code = spool_sim::main_with(&args, &mut std::io::stdout().lock(), &mut std::io::stderr().lock());
    std::process::exit(code);
}
