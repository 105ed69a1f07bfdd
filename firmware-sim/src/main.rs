//! `spool-sim`: see the crate docs ([`spool_sim`]).

fn main() {
    spool_sim::cli::install_interrupt_handler();
    let code = match spool_sim::utf8_args(std::env::args_os().skip(1)) {
        Ok(args) => spool_sim::main_with(&args, &mut std::io::stdout().lock(), &mut std::io::stderr().lock()),
        Err(e) => {
            eprintln!("spool-sim: {e}");
            2
        }
    };
    std::process::exit(code);
}
