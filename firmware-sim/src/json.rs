//! A minimal JSON writer: the simulator's reports are flat objects of numbers and strings.

use std::fmt::Write;

/// Builds one JSON object, key by key.
#[derive(Default)]
pub struct Object {
    out: String,
}

impl Object {
    /// An empty object.
    pub fn new() -> Self {
        Self::default()
    }

    fn key(&mut self, k: &str) {
        self.out.push(if self.out.is_empty() { '{' } else { ',' });
        string(&mut self.out, k);
        self.out.push(':');
    }

    /// Adds a number (non-finite values become `null`).
    pub fn num(mut self, k: &str, v: impl Into<f64>) -> Self {
        let v = v.into();
        self.key(k);
        if v.is_finite() {
            if v.fract() == 0.0 && v.abs() < 9.0e15 {
                let _ = write!(self.out, "{}", v as i64);
            } else {
                let _ = write!(self.out, "{v}");
            }
        } else {
            self.out.push_str("null");
        }
        self
    }

    /// Adds a string.
    pub fn str(mut self, k: &str, v: &str) -> Self {
        self.key(k);
        string(&mut self.out, v);
        self
    }

    /// Adds pre-rendered JSON.
    pub fn raw(mut self, k: &str, json: &str) -> Self {
        self.key(k);
        self.out.push_str(json);
        self
    }

    /// The finished object.
    pub fn finish(mut self) -> String {
        if self.out.is_empty() {
            self.out.push('{');
        }
        self.out.push('}');
        self.out
    }
}

/// Appends `s` as a JSON string literal.
pub fn string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// A JSON array of numbers.
pub fn array<T: std::fmt::Display>(items: impl IntoIterator<Item = T>) -> String {
    let mut out = String::from("[");
    for (i, v) in items.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, "{v}");
    }
    out.push(']');
    out
}
