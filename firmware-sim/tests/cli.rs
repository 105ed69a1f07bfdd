//! The `spool-sim` binary as a llama.cpp user drives it: help and version on stdout, every bad
//! input of issue 9 a clear error with a non-zero exit, text streamed as it is produced, and
//! Ctrl-C keeping the text so far (exit 130). Runs the real binary as a child process.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Duration;

const EXE: &str = env!("CARGO_BIN_EXE_spool-sim");

fn model() -> String {
    format!("{}/../models/stories260K.gguf", env!("CARGO_MANIFEST_DIR"))
}

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

fn spool_sim(args: &[&str]) -> Out {
    let out = Command::new(EXE).args(args).output().expect("run spool-sim");
    Out {
        code: out.status.code().expect("spool-sim exits, not killed by a signal"),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[test]
fn help_and_version_go_to_stdout_with_exit_0() {
    for args in [&["--help"][..], &["-h"], &["run", "--help"], &["run", "-h"], &["help", "run"]] {
        let o = spool_sim(args);
        assert_eq!(o.code, 0, "{args:?}: {}", o.stderr);
        assert!(o.stdout.contains("Usage: spool-sim"), "{args:?}: {}", o.stdout);
        assert!(o.stderr.is_empty(), "{args:?}: {}", o.stderr);
    }
    let o = spool_sim(&["run", "--help"]);
    // One line per flag, llama.cpp's names among them, and the default of -n stated.
    for flag in [
        "-t, --threads",
        "-c, --ctx-size",
        "-f, --file",
        "-n, --n-predict",
        "-s, --seed",
        "--temp",
        "--steps",
        "--top-k",
        "--min-p",
        "--repeat-penalty",
        "--repeat-last-n",
    ] {
        assert!(o.stdout.lines().any(|l| l.trim_start().starts_with(flag)), "{flag} missing:\n{}", o.stdout);
    }
    assert!(o.stdout.contains("[default: --steps 256 when neither is given]"), "{}", o.stdout);
    let o = spool_sim(&["--version"]);
    assert_eq!((o.code, o.stdout.trim()), (0, format!("spool-sim {}", env!("CARGO_PKG_VERSION")).as_str()));
}

/// (arguments after `run -m MODEL`, or a whole command line when it starts with `!`; what the
/// error must say).
const BAD: &[(&[&str], &str)] = &[
    (&["-n", "-5"], "--n-predict <N>"),
    (&["-n", "-2"], "expected -1"),
    (&["-n", "2.7"], "not a whole number"),
    (&["--temp", "nan"], "not a finite number"),
    (&["--temp", "inf"], "not a finite number"),
    (&["--temp", "-1"], "expected 0 (greedy) to 100"),
    (&["--top-p", "1.5"], "expected 0 to 1"),
    (&["--prefetch", "1000"], "expected 0 to 8"),
    (&["--prefetch", "-1"], "not a whole number"),
    (&["-t", "0"], "expected 1 to 256"),
    (&["-t", "2.5"], "not a whole number"),
    (&["-c", "-3"], "for '--ctx-size <N>': `-3` is not a whole number"),
    (&["-c", "abc"], "not a whole number"),
    (&["--steps", "1e3"], "not a whole number"),
    (&["-s", "-1"], "for '--seed <S>': `-1` is not a whole number"),
    (&["--ram", "12Q"], "the unit must be K, M or G"),
    (&["--ram", "nan"], "must be a finite number"),
    (&["--ram", "150%"], "a percentage must be 0 to 100"),
    (&["--flash-mbps", "0"], "expected more than 0"),
    (&["--policy", "fifo"], "possible values: pin, lru"),
    (&["-n", "4", "--steps", "4"], "cannot be used with"),
    (&["--tempp", "0"], "tip: a similar argument exists: '--temp'"),
    (&["-c", "4", "-p", "Once upon a time there was a girl"], "the context holds 4"),
    (&["!", "runn", "-m", "x"], "tip: a similar subcommand exists: 'run'"),
    (&["!", "inspect", "-m", "MODEL", "--ctx", "abc"], "not a whole number"),
    (&["!", "inspect", "-m", "MODEL", "--ram", "1X"], "the unit must be K, M or G"),
    (&["!", "run"], "--model <MODEL>"),
    (&["--faults", "latency=5"], "MS@K"),
    (&["--top-k", "-1"], "for '--top-k <K>': `-1` is not a whole number"),
    (&["--top-k", "2.5"], "not a whole number"),
    (&["--min-p", "nan"], "not a finite number"),
    (&["--min-p", "1.5"], "expected 0 to 1"),
    (&["--repeat-penalty", "0"], "expected more than 0 and at most 100"),
    (&["--repeat-penalty", "inf"], "not a finite number"),
    (&["--repeat-last-n", "-1"], "not a whole number"),
    (&["--repeat-last-n", "99999999"], "expected 0 (off) to 1048576"),
    (&["!", "bench", "budget", "--points", "1"], "1 is not in 2..=1000"),
    (&["!", "bench", "budget", "--pointz", "3"], "tip: a similar argument exists: '--points'"),
    (&["!", "bench", "prefetch", "--prefetch", "9"], "expected 0 to 8"),
    (&["!", "bench", "policies", "--flash-mbps", "nan"], "not a finite number"),
    (&["!", "bench", "decode", "--threads", "1,0"], "expected 1 to 256"),
    (&["!", "bench", "matvec", "--cols", "100"], "cols a positive multiple of 256"),
    (&["!", "bench", "sweep"], "unrecognized subcommand 'sweep'"),
];

#[test]
fn every_bad_input_is_a_clear_error_with_a_non_zero_exit() {
    let m = model();
    for (args, says) in BAD {
        let line: Vec<&str> = match args.first() {
            Some(&"!") => args[1..].iter().map(|a| if *a == "MODEL" { m.as_str() } else { a }).collect(),
            _ => ["run", "-m", m.as_str()].iter().chain(args.iter()).copied().collect(),
        };
        let o = spool_sim(&line);
        assert_eq!(o.code, 2, "{line:?} exited {}: {}", o.code, o.stderr);
        assert!(o.stderr.contains(says), "{line:?}: expected `{says}` in:\n{}", o.stderr);
        assert!(!o.stderr.contains("panicked"), "{line:?}: {}", o.stderr);
        assert!(o.stdout.is_empty(), "{line:?} printed: {}", o.stdout);
    }
}

#[test]
fn a_prompt_longer_than_the_context_names_both_numbers() {
    let o = spool_sim(&["run", "-m", &model(), "-c", "4", "-p", "Once upon a time there was a girl"]);
    assert_eq!(o.code, 2);
    assert!(o.stderr.contains("the prompt is 11 tokens but the context holds 4"), "{}", o.stderr);
}

#[test]
fn llama_cpp_names_mean_what_they_mean_there() {
    let m = model();
    // -t is threads, -n counts new tokens, -s is the seed, -c 0 is the model's context (2048).
    let o = spool_sim(&["run", "-m", &m, "-p", "Once upon a time", "-n", "20", "-t", "2", "-s", "42", "-c", "0"]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(o.stderr.contains("2 thread(s), seed 42"), "{}", o.stderr);
    assert!(o.stderr.contains("(24 positions, 5 from the prompt"), "{}", o.stderr);
    assert!(o.stderr.contains("context 2048"), "{}", o.stderr);
    // The same seed gives the same text; without --seed, the OS's seed is printed.
    let again = spool_sim(&["run", "-m", &m, "-p", "Once upon a time", "-n", "20", "-s", "42"]);
    assert_eq!(again.stdout, o.stdout);
    let random = spool_sim(&["run", "-m", &m, "-n", "5", "--json"]);
    assert_eq!(random.code, 0, "{}", random.stderr);
    assert!(random.stdout.contains("\"seed\":"), "{}", random.stdout);
    assert!(random.stderr.contains(", seed "), "{}", random.stderr);
    // Sizes in every spelling, in run and inspect.
    for ram in ["600K", "600KiB", "600KB", "0.6M", "60%"] {
        let o = spool_sim(&["run", "-m", &m, "--steps", "8", "--temp", "0", "--ram", ram]);
        assert_eq!(o.code, 0, "--ram {ram}: {}", o.stderr);
        let o = spool_sim(&["inspect", "-m", &m, "--ram", ram]);
        assert_eq!(o.code, 0, "inspect --ram {ram}: {}", o.stderr);
    }
    // -f reads the prompt from a file.
    let path = std::env::temp_dir().join(format!("spool-cli-prompt-{}.txt", std::process::id()));
    std::fs::write(&path, "Once upon a time").unwrap();
    let f = spool_sim(&["run", "-m", &m, "-f", path.to_str().unwrap(), "-n", "20", "-s", "42"]);
    let _ = std::fs::remove_file(&path);
    assert_eq!(f.stdout, o.stdout);
}

#[test]
fn n_predict_0_runs_and_prints_nothing_as_llama_cpp() {
    let o = spool_sim(&["run", "-m", &model(), "-p", "Once upon a time", "-n", "0", "--json"]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let j: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!((j["stats"]["positions"].as_u64(), j["text"].as_str()), (Some(0), Some("")));
    let o = spool_sim(&["run", "-m", &model(), "-p", "Once upon a time", "-n", "0"]);
    assert_eq!((o.code, o.stdout.as_str()), (0, ""), "{}", o.stderr);
    assert!(o.stderr.contains("(0 positions, 0 from the prompt"), "{}", o.stderr);
}

#[test]
fn sampling_flags_change_the_text_and_a_seed_repeats_it() {
    let m = model();
    let run = |extra: &[&str]| {
        let mut line = vec!["run", "-m", m.as_str(), "-p", "Once upon a time", "-n", "60"];
        line.extend_from_slice(extra);
        let o = spool_sim(&line);
        assert_eq!(o.code, 0, "{extra:?}: {}", o.stderr);
        o.stdout
    };
    // Greedy text repeats itself on this model; a repetition penalty over the last 64 tokens
    // changes it, and is itself deterministic.
    let greedy = run(&["--temp", "0"]);
    let penalized = run(&["--temp", "0", "--repeat-penalty", "1.5"]);
    assert_ne!(penalized, greedy);
    assert_eq!(run(&["--temp", "0", "--repeat-penalty", "1.5"]), penalized);
    assert_eq!(run(&["--temp", "0", "--repeat-penalty", "1.5", "--repeat-last-n", "0"]), greedy);
    // Top-k 1 is greedy at any temperature and seed; top-k and min-p runs repeat with their seed.
    assert_eq!(run(&["--temp", "1", "--top-k", "1", "-s", "5"]), greedy);
    let sampled = run(&["--top-k", "40", "--min-p", "0.05", "-s", "9"]);
    assert_eq!(run(&["--top-k", "40", "--min-p", "0.05", "-s", "9"]), sampled);
}

#[test]
fn json_has_the_documented_fields_and_nothing_else() {
    let m = model();
    let o = spool_sim(&["run", "-m", &m, "-p", "Once upon a time", "-n", "10", "-s", "42", "--top-k", "5", "--json"]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let j: serde_json::Value = serde_json::from_str(&o.stdout).expect("one JSON object");
    assert_eq!(j["schema_version"], 2);
    assert_eq!(j["model"], m.as_str());
    assert_eq!((j["sampling"]["seed"].as_u64(), j["sampling"]["top_k"].as_u64()), (Some(42), Some(5)));
    assert_eq!(j["stats"]["prefill_positions"], 5);
    assert_eq!(j["stats"]["decode_positions"], 9); // -n 10: the prompt's last position samples the first
    assert_eq!(j["token_ids"].as_array().map(Vec::len), Some(15));
    let t = &j["timing"];
    let (load, ttft) = (t["load_s"].as_f64().unwrap(), t["time_to_first_token_s"].as_f64().unwrap());
    assert!(load > 0.0 && ttft >= load, "{t}");
    assert!(t["prefill_tokens_per_s"].as_f64().unwrap() > 0.0 && t["decode_tokens_per_s"].as_f64().unwrap() > 0.0);
    assert!(j["sim"].is_null());
    assert_eq!(
        j["plan"]["slot_region_bytes"],
        j["plan"]["slot_count"].as_u64().unwrap() * j["plan"]["slot_bytes"].as_u64().unwrap()
    );
    // Every field is documented in docs/json.md, and the retired ambiguous names are gone.
    let doc = std::fs::read_to_string(format!("{}/../docs/json.md", env!("CARGO_MANIFEST_DIR"))).unwrap();
    fn keys(v: &serde_json::Value, out: &mut Vec<String>) {
        if let Some(map) = v.as_object() {
            for (k, v) in map {
                out.push(k.clone());
                keys(v, out);
            }
        }
    }
    let mut all = Vec::new();
    keys(&j, &mut all);
    for k in &all {
        let documented =
            [format!("`{k}`"), format!("`{k}."), format!(".{k}`")].iter().any(|p| doc.contains(p.as_str()));
        assert!(documented, "`{k}` is not in docs/json.md");
        assert!(!["resident_bytes", "slots", "seed_"].contains(&k.as_str()), "retired name `{k}`");
    }
}

#[test]
fn verbose_logs_quiet_silences_and_pipes_never_see_a_progress_bar() {
    let m = model();
    let base = ["run", "-m", m.as_str(), "-n", "8", "-s", "3"];
    let plain = spool_sim(&base);
    let quiet = spool_sim(&[&["-q"][..], &base].concat());
    let verbose = spool_sim(&[&["-vv"][..], &base].concat());
    assert_eq!((plain.code, quiet.code, verbose.code), (0, 0, 0), "{}", verbose.stderr);
    // The text is the same; -q drops the report, -vv adds log lines from the CLI and spool-std.
    assert_eq!((quiet.stdout.as_str(), verbose.stdout.as_str()), (plain.stdout.as_str(), plain.stdout.as_str()));
    assert!(plain.stderr.contains("arena plan") && !plain.stderr.contains("INFO"), "{}", plain.stderr);
    assert!(quiet.stderr.is_empty(), "{}", quiet.stderr);
    assert!(verbose.stderr.contains("[INFO  spool_sim::run] loaded in"), "{}", verbose.stderr);
    assert!(verbose.stderr.contains("[DEBUG spool_std"), "{}", verbose.stderr);
    // synth to a pipe: no bar, no terminal control codes.
    let path = std::env::temp_dir().join(format!("spool-cli-synth-{}.gguf", std::process::id()));
    let o = spool_sim(&[
        "synth",
        "-o",
        path.to_str().unwrap(),
        "--layers",
        "1",
        "--dim",
        "64",
        "--hidden",
        "128",
        "--heads",
        "2",
        "--vocab",
        "512",
        "--ctx",
        "64",
    ]);
    let _ = std::fs::remove_file(&path);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(!o.stderr.contains('\u{1b}') && !o.stderr.contains('\r'), "{:?}", o.stderr);
}

/// A model slow enough (scalar kernels, a 4096-position context) that a run outlives the first
/// token by seconds.
fn slow_model(tag: &str) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("spool-cli-slow-{tag}-{}.gguf", std::process::id()));
    let o = spool_sim(&[
        "synth",
        "-o",
        path.to_str().unwrap(),
        "--dim",
        "256",
        "--hidden",
        "768",
        "--layers",
        "8",
        "--heads",
        "8",
        "--vocab",
        "512",
        "--ctx",
        "4096",
        "--type",
        "Q4_0",
        "--vocab-from",
        &model(),
    ]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    path
}

fn spawn_run(model: &std::path::Path, n: &str) -> std::process::Child {
    Command::new(EXE)
        .args(["run", "-m", model.to_str().unwrap(), "-p", "Once", "-n", n, "--temp", "0", "--kernel", "scalar"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn spool-sim")
}

#[test]
fn text_streams_before_the_run_ends() {
    let model = slow_model("stream");
    let mut child = spawn_run(&model, "300");
    let mut stdout = child.stdout.take().unwrap();
    let mut first = [0u8; 64];
    let got = stdout.read(&mut first).unwrap();
    assert!(got > 0, "no text before the end");
    assert!(child.try_wait().unwrap().is_none(), "the first text came only when the run had ended");
    let mut rest = Vec::new();
    stdout.read_to_end(&mut rest).unwrap();
    let status = child.wait().unwrap();
    let _ = std::fs::remove_file(&model);
    assert!(status.success());
    assert!(!rest.is_empty(), "everything came in the first read");
}

#[test]
fn ctrl_c_keeps_the_text_so_far_and_exits_130() {
    let model = slow_model("sigint");
    let mut child = spawn_run(&model, "-1");
    let mut stdout = child.stdout.take().unwrap();
    let mut first = [0u8; 16];
    assert!(stdout.read(&mut first).unwrap() > 0);
    std::thread::sleep(Duration::from_millis(200));
    let kill = Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(kill.success());
    let mut rest = Vec::new();
    stdout.read_to_end(&mut rest).unwrap();
    let out = child.wait_with_output().unwrap();
    let _ = std::fs::remove_file(&model);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("interrupted: ") && stderr.contains("tok/s"), "{stderr}");
    assert!(!rest.is_empty(), "the text after the first read was lost");
}

#[test]
fn non_ascii_prompts_echo_intact_and_runc_output_keeps_run_c_s_filter() {
    let m = model();
    let prompt = "Tom und Jürgen 🍕";
    let o = spool_sim(&["run", "-m", &m, "-p", prompt, "-n", "3", "--temp", "0"]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(o.stdout.starts_with(prompt), "{}", o.stdout);
    let json = spool_sim(&["run", "-m", &m, "-p", prompt, "-n", "3", "--temp", "0", "--json"]);
    assert!(json.stdout.contains(&format!("\"text\":\"{prompt}")), "{}", json.stdout);
    // run.c drops the lone bytes of ü and 🍕.
    let runc = spool_sim(&["run", "-m", &m, "-p", prompt, "-n", "3", "--temp", "0", "--runc-output"]);
    assert!(runc.stdout.starts_with("Tom und Jrgen "), "{}", runc.stdout);
}
