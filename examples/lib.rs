//! Nothing here: the programs are the examples (`cargo run -p spool-examples --example desktop`).
